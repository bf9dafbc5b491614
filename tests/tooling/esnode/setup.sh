#!/usr/bin/env bash
# Builds the embedded Elasticsearch 7.17 / OpenSearch 2.19 / OpenSearch 3.3 node launcher used by
# tests/elasticsearch. Idempotent: Maven caches the jars in ~/.m2 and the build is skipped
# when the sources did not change since the last one.
set -euo pipefail
cd "$(dirname "$0")"
# Maven and a JDK 17 come with the machine; install them from Debian if a machine lacks them.
if ! command -v mvn >/dev/null || [ ! -x /usr/lib/jvm/java-17-openjdk-amd64/bin/javac ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends maven openjdk-17-jdk-headless >/dev/null
fi
# OpenSearch 3.x needs a JDK 21+, which Debian 12 does not package: Eclipse Temurin from
# Adoptium's apt repository when the machine has no Temurin 21+ (esnode.py looks for the same).
jdk21() {
  local d
  for d in $(ls -d /usr/lib/jvm/temurin-[2-9][0-9]-jdk-amd64 2>/dev/null | sort -rV); do
    [ "$(basename "$d" | cut -d- -f2)" -ge 21 ] && [ -x "$d/bin/javac" ] && { echo "$d"; return 0; }
  done
  return 1
}
install_temurin21() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates wget >/dev/null &&
  mkdir -p /etc/apt/keyrings &&
  wget -q --tries=3 --timeout=30 -O /etc/apt/keyrings/adoptium.asc https://packages.adoptium.net/artifactory/api/gpg/key/public &&
  echo "deb [signed-by=/etc/apt/keyrings/adoptium.asc] https://packages.adoptium.net/artifactory/deb $(. /etc/os-release && echo "$VERSION_CODENAME") main" \
    > /etc/apt/sources.list.d/adoptium.list &&
  apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends temurin-21-jdk >/dev/null
}
if ! jdk21 >/dev/null; then
  echo "esnode: installing Temurin 21 from Adoptium's apt repository (OpenSearch 3 needs Java 21+)"
  if ! install_temurin21; then
    rm -f /etc/apt/sources.list.d/adoptium.list  # an unreachable repository must not break later apt-get updates
    echo "esnode: Temurin 21 could not be installed; the OpenSearch 3 tests will fail under CI" >&2
  fi
fi
JDK21=$(jdk21 || true)
stamp=.build-stamp
sum=$(cat pom.xml */pom.xml $(find . -name '*.java' | sort) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -d es7/target/lib ] && [ -d os2/target/lib ] \
   && { [ -z "$JDK21" ] || [ -d os3/target/lib ]; }; then
  echo "esnode launcher up to date"
  exit 0
fi
JAVA_HOME=${ESNODE_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64} mvn -q -B package
# OpenSearch 3.x needs Java 21+: build its launcher with the Temurin JDK when there is one.
if [ -n "$JDK21" ]; then
  JAVA_HOME=$JDK21 mvn -q -B -pl os3 -am package
fi
echo "$sum" > "$stamp"
echo "esnode launcher built"
