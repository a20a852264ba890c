#!/usr/bin/env bash
# Make sure R and every package the R reference scripts (tests/reference/*.R) load are here,
# before `make reference` re-runs them. As root with apt-get, installs Debian's packages
# for whatever is missing; otherwise says what to install and fails.
set -euo pipefail

say() { printf 'ensure-r: %s\n' "$*"; }

PACKAGES=(nlme emmeans mice geepack sandwich numDeriv metafor jsonlite)
DEBIAN=(r-base-core r-cran-nlme r-cran-emmeans r-cran-mice r-cran-geepack r-cran-sandwich
        r-cran-numderiv r-cran-metafor r-cran-jsonlite)

missing() {
    command -v Rscript >/dev/null || { echo "R"; return; }
    Rscript -e 'for (p in commandArgs(TRUE)) if (!requireNamespace(p, quietly = TRUE)) cat(p, "")' \
        "${PACKAGES[@]}"
}

gaps=$(missing)
if [[ -z "$gaps" ]]; then
    say "R and the packages ${PACKAGES[*]} are installed"
    exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    say "missing: $gaps; installing Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${DEBIAN[@]}"
    gaps=$(missing)
    [[ -z "$gaps" ]] && { say "installed"; exit 0; }
    say "still missing after installing: $gaps" >&2
    exit 1
fi
say "missing: $gaps. Install: apt-get install --no-install-recommends ${DEBIAN[*]}" >&2
exit 1
