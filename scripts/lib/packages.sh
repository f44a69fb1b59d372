# Debian system packages, shared by scripts/setup and scripts/test (source it; bash).
# ensure_packages PKG... checks each package with dpkg-query and installs only the missing ones, then
# checks again: a package that is still missing stops the script with its name.

package_installed() {
  # dpkg-query prints one short status line; compare it whole (no `| grep -q`: under pipefail an early
  # grep exit can kill the writer with SIGPIPE and turn "found" into "missing").
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

ensure_packages() {
  local p missing=()
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "$(basename "$0"): not a Debian system (no dpkg-query); make sure these are installed: $*" >&2
    return 0
  fi
  for p in "$@"; do package_installed "$p" || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "$(basename "$0"): missing system packages: ${missing[*]} — install them as root (apt-get install ${missing[*]})" >&2
      return 1
    fi
  fi
  echo "$(basename "$0"): installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for p in "${missing[@]}"; do
    package_installed "$p" || { echo "$(basename "$0"): $p is still not installed" >&2; return 1; }
  done
}

# What the tests need beyond the main job: PostgreSQL (state and SQL-engine tests), Chromium (workbench
# browser test), a Java 17 runtime (the Spark engine tests, PySpark 4 in local mode).
TEST_PACKAGES=(postgresql chromium chromium-driver openjdk-17-jre-headless)

# ensure_test_env VENV: the test packages above, and the project's `spark` extra (PySpark) in VENV
# (not with ZHIXIANG_SKIP_SPARK=1: CI's Python 3.13 leg runs only the real-time parity tests).
ensure_test_env() {
  local venv="$1"
  ensure_packages "${TEST_PACKAGES[@]}"
  if [ -z "${ZHIXIANG_SKIP_SPARK:-}" ] && ! "$venv/bin/python" -c 'import pyspark' >/dev/null 2>&1; then
    echo "$(basename "$0"): installing the spark extra (PySpark) into $venv"
    "$venv/bin/python" -m pip -q --disable-pip-version-check install -e '.[dev,spark]'
  fi
}

# java17_home: JAVA_HOME of Debian's Java 17 runtime, when installed (PySpark 4 needs 17 or later; another
# default `java` is not used).
java17_home() {
  local arch home
  arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
  home="/usr/lib/jvm/java-17-openjdk-$arch"
  [ -x "$home/bin/java" ] && echo "$home"
  return 0
}
