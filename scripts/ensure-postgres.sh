#!/usr/bin/env bash
# Make sure the tests will have a PostgreSQL server (see tests/postgres.py), before they run.
#
# Succeeds, changing nothing, when any of these holds:
#   - LUMBAR_TEST_POSTGRES_URL is set (the tests use that server);
#   - a server answers on 127.0.0.1:5432 (the tests use it);
#   - the PostgreSQL server binaries (initdb, pg_ctl) are installed (the tests start a
#     throwaway cluster with them).
# Otherwise, as root with apt-get, installs them (the Debian/Ubuntu package "postgresql");
# else says how to get a server and fails.
set -euo pipefail

say() { printf 'ensure-postgres: %s\n' "$*"; }

if [[ -n "${LUMBAR_TEST_POSTGRES_URL:-}" ]]; then
    say "using the server in LUMBAR_TEST_POSTGRES_URL"
    exit 0
fi

# The directory holding initdb and pg_ctl: on PATH first, else the highest version
# where Debian (/usr/lib/postgresql/N/bin) or RHEL (/usr/pgsql-N/bin) installs them.
server_bindir() {
    local initdb dir
    if initdb=$(command -v initdb) && [[ -x "$(dirname "$initdb")/pg_ctl" ]]; then
        dirname "$initdb"
        return 0
    fi
    for dir in $(compgen -G '/usr/lib/postgresql/*/bin' || true; compgen -G '/usr/pgsql-*/bin' || true); do
        printf '%s\n' "$dir"
    done | sort -rV | while read -r dir; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            printf '%s\n' "$dir"
            break
        fi
    done | grep .
}

# Whether a server accepts connections on 127.0.0.1:5432.
local_server_answers() {
    local isready
    isready=$(command -v pg_isready || true)
    if [[ -z "$isready" ]]; then
        local dir
        if dir=$(server_bindir) && [[ -x "$dir/pg_isready" ]]; then
            isready="$dir/pg_isready"
        fi
    fi
    if [[ -n "$isready" ]]; then
        "$isready" --quiet --host=127.0.0.1 --port=5432 --timeout=2
    elif command -v timeout >/dev/null; then
        timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432' 2>/dev/null
    else
        bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432' 2>/dev/null
    fi
}

root_needs_postgres_user() {
    if [[ "$(id -u)" == 0 ]] && ! id postgres >/dev/null 2>&1; then
        say "warning: running as root, where the throwaway cluster runs as the OS user" \
            "'postgres', which does not exist (create it: useradd --system postgres)" >&2
    fi
}

if local_server_answers; then
    say "a server answers on 127.0.0.1:5432"
    exit 0
fi

if bindir=$(server_bindir); then
    say "no server on 127.0.0.1:5432; the tests will start one with $bindir/initdb and pg_ctl"
    root_needs_postgres_user
    exit 0
fi

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    say "no PostgreSQL server or server binaries; installing them:"
    say "apt-get update && apt-get install -y --no-install-recommends postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends postgresql
    if bindir=$(server_bindir); then
        say "installed; the tests will use $bindir (or a server on 127.0.0.1:5432 if it started one)"
        root_needs_postgres_user
        exit 0
    fi
    say "installed the postgresql package but still found no initdb and pg_ctl" >&2
    exit 1
fi

cat >&2 <<'EOF'
ensure-postgres: the database tests need PostgreSQL, and there is none here:
  no LUMBAR_TEST_POSTGRES_URL, no server on 127.0.0.1:5432, no initdb/pg_ctl on PATH
  or in /usr/lib/postgresql/*/bin or /usr/pgsql-*/bin.
Do one of:
  - install the server binaries (the tests then start a throwaway server themselves):
      Debian/Ubuntu:  sudo apt-get install postgresql
      Fedora/RHEL:    sudo dnf install postgresql-server
      macOS:          brew install postgresql@16   (and put its bin directory on PATH)
  - or point the tests at a server you have:
      export LUMBAR_TEST_POSTGRES_URL=postgresql://user:password@host:5432/postgres
EOF
exit 1
