#!/bin/bash
# Container health check: nginx answers 200 on /web-healthz (bash's /dev/tcp: no curl needed).
exec 3<>/dev/tcp/127.0.0.1/8080 || exit 1
printf 'GET /web-healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
read -r -t 3 _ status _ <&3 || exit 1
[ "$status" = 200 ]
