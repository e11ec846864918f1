#!/bin/sh
# Build the images with podman from Debian bookworm bases made here (base.sh), a local wheelhouse
# and no network inside the builds; tag each with the version and the git revision; push both
# tags to the local registry (started on loopback when it is not running). Run from the
# repository root by `make images`; CONTAINERS_CONF names the project's containers.conf.
#   IMAGES="searcher web devnet postgres prometheus"  which to build (default: all)
#   REGISTRY=127.0.0.1:5050                 where to push ("" to skip pushing)
set -eu

python=${PYTHON_BIN:-.venv/bin/python}
images=${IMAGES:-searcher web devnet postgres prometheus}
registry=${REGISTRY-127.0.0.1:5050}
version=$($python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
revision=$(git rev-parse --short=12 HEAD)
full_revision=$(git rev-parse HEAD)

# --- bases: Debian packages only --------------------------------------------------------------
deploy/images/base.sh python python3,python3-venv,ca-certificates
case " $images " in *" web "*) deploy/images/base.sh web nginx-light,ca-certificates ;; esac
case " $images " in *" postgres "*) deploy/images/base.sh postgres postgresql-15 ;; esac
case " $images " in *" prometheus "*) deploy/images/base.sh prometheus prometheus,ca-certificates ;; esac

# --- the wheelhouse: the project's wheel and every dependency for CPython 3.11 on Linux ---------
# Files that did not change keep their dates, so that podman reuses its cached layers.
new=build/wheelhouse.new
rm -rf "$new" && mkdir -p "$new" build/wheelhouse
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
    $python -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$new" . 2>/dev/null
$python -m pip download --quiet --disable-pip-version-check -d "$new" \
    --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 \
    --abi none --platform manylinux_2_36_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any \
    pip "$new/arbx-$version-py3-none-any.whl" 2>&1 | grep -v 'is ignored' >&2 || true
ls "$new"/pip-*.whl >/dev/null
for file in build/wheelhouse/*; do [ -e "$new/${file##*/}" ] || rm -f "$file"; done
for file in "$new"/*; do cmp -s "$file" "build/wheelhouse/${file##*/}" || cp "$file" build/wheelhouse/; done
rm -rf "$new"

# --- the devnet's files: anvil, the Uniswap artifacts, the test token compiled on the host -----
case " $images " in *" devnet "*)
    $python -c 'from arbx.devnet.world import test_token_artifact; test_token_artifact()'
    rm -rf build/devnet && mkdir -p build/devnet/node_modules/@uniswap build/devnet/node_modules/solc \
        build/devnet/node_modules/@foundry-rs/anvil-linux-amd64 build/devnet/contracts build/devnet/build
    cp -p pyproject.toml package.json build/devnet/
    cp -a contracts/test build/devnet/contracts/
    cp -a build/contracts build/devnet/build/
    cp -p node_modules/solc/package.json build/devnet/node_modules/solc/
    cp -a node_modules/@foundry-rs/anvil-linux-amd64/bin build/devnet/node_modules/@foundry-rs/anvil-linux-amd64/
    for package in v2-core/build v2-periphery/build v3-core/artifacts v3-periphery/artifacts; do
        mkdir -p "build/devnet/node_modules/@uniswap/${package%/*}"
        cp -a "node_modules/@uniswap/$package" "build/devnet/node_modules/@uniswap/$package"
    done
    ;;
esac

# --- the images ---------------------------------------------------------------------------------
for name in $images; do
    case $name in
        searcher|devnet) base=localhost/arbx-base-python:bookworm ;;
        *) base=localhost/arbx-base-$name:bookworm ;;
    esac
    image=localhost/arbx-$name
    start=$(date +%s)
    # the labels also as options: podman's layer cache ignores a changed build argument, so a
    # LABEL made from one could keep the revision of an earlier build
    podman build --quiet --format docker --network none --pull=never \
        -f "deploy/images/$name/Containerfile" --build-arg BASE="$base" \
        --build-arg VERSION="$version" --build-arg REVISION="$full_revision" \
        --label "org.opencontainers.image.version=$version" \
        --label "org.opencontainers.image.revision=$full_revision" \
        -t "$image:$version" -t "$image:$revision" . >/dev/null
    size=$(podman image inspect --format '{{.Size}}' "$image:$version")
    echo "built $image:$version and :$revision ($((size / 1000000)) MB, $(($(date +%s) - start)) s)"
done

# --- the registry: every version pushed stays there -------------------------------------------
[ -n "$registry" ] || exit 0
deploy/images/registry.sh start "$registry"
for name in $images; do
    for tag in "$version" "$revision"; do
        podman push --quiet --tls-verify=false "localhost/arbx-$name:$tag" \
            "$registry/arbx-$name:$tag"
    done
    echo "pushed $registry/arbx-$name:$version and :$revision"
done
