#!/bin/sh
# Render nginx's configuration with the API's address (ARBX_API_UPSTREAM), write config.js
# (ARBX_API_URL: where the browser finds the API; empty: this origin) and run nginx.
set -eu
upstream=${ARBX_API_UPSTREAM:-http://api:8000}
case $upstream in
    http://*|https://*) ;;
    *) echo "arbx-web: error: ARBX_API_UPSTREAM must be an http(s) URL, not '$upstream'" >&2; exit 2 ;;
esac
case $upstream in
    *[!A-Za-z0-9:/._-]*) echo "arbx-web: error: ARBX_API_UPSTREAM has characters a URL base cannot have" >&2; exit 2 ;;
esac
upstream=${upstream%/}
# the address the browser uses for the API (config.js): empty for this origin (proxied /api/)
public=${ARBX_API_URL:-}
case $public in
    "") ;;
    http://*|https://*)
        case $public in *[!A-Za-z0-9:/._-]*)
            echo "arbx-web: error: ARBX_API_URL has characters a URL base cannot have" >&2; exit 2 ;;
        esac ;;
    *) echo "arbx-web: error: ARBX_API_URL must be empty or an http(s) URL, not '$public'" >&2; exit 2 ;;
esac
printf '// Written at start from ARBX_API_URL.\nwindow.ARBX_CONFIG = { api: "%s" };\n' "$public" \
    >/tmp/arbx-config.js
resolver=$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)
case $resolver in
    "") resolver=127.0.0.1 ;;
    *:*) resolver="[$resolver]" ;;
esac
sed -e "s|@API_UPSTREAM@|$upstream|" -e "s|@RESOLVER@|$resolver|" \
    /opt/arbx-web/nginx.conf.template >/tmp/nginx.conf
exec nginx -c /tmp/nginx.conf -g 'daemon off;'
