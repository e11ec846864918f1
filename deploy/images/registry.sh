#!/bin/sh
# The local registry: registry.sh start|stop|tags [ADDRESS] [IMAGE]. Started detached
# (pid in build/registry/pid, log in build/registry/log), storage in build/registry/data
# (REGISTRY_DIR moves all three). Run from the repository root.
set -eu
action=$1
address=${2:-127.0.0.1:5050}
top=${REGISTRY_DIR:-$(pwd)/build/registry}
case $action in
    start)
        if curl -fsS "http://$address/v2/" >/dev/null 2>&1; then exit 0; fi
        mkdir -p "$top/data"
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$top/data REGISTRY_HTTP_ADDR=$address \
            setsid docker-registry serve deploy/images/registry/config.yml \
            >>"$top/log" 2>&1 </dev/null &
        echo $! >"$top/pid"
        for _ in $(seq 50); do
            if curl -fsS "http://$address/v2/" >/dev/null 2>&1; then
                echo "registry on http://$address (storage $top/data)"
                exit 0
            fi
            sleep 0.1
        done
        echo "the registry did not start: see $top/log" >&2
        exit 1
        ;;
    stop)
        if [ -f "$top/pid" ]; then kill "$(cat "$top/pid")" 2>/dev/null || true; rm -f "$top/pid"; fi
        ;;
    tags)
        curl -fsS "http://$address/v2/${3:-arbx-searcher}/tags/list"
        echo
        ;;
    *) echo "usage: registry.sh start|stop|tags [ADDRESS] [IMAGE]" >&2; exit 2 ;;
esac
