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
stamp=.build-stamp
sum=$(cat pom.xml */pom.xml $(find . -name '*.java' | sort) | sha256sum | cut -d' ' -f1)
JDK21=/usr/lib/jvm/temurin-25-jdk-amd64
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -d es7/target/lib ] && [ -d os2/target/lib ] \
   && { [ ! -x "$JDK21/bin/javac" ] || [ -d os3/target/lib ]; }; then
  echo "esnode launcher up to date"
  exit 0
fi
JAVA_HOME=${ESNODE_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64} mvn -q -B package
# OpenSearch 3.x needs Java 21+: build its launcher with the Temurin JDK when there is one.
if [ -x "$JDK21/bin/javac" ]; then
  JAVA_HOME=$JDK21 mvn -q -B -pl os3 -am package
fi
echo "$sum" > "$stamp"
echo "esnode launcher built"
