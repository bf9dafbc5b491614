#!/usr/bin/env bash
# Builds the embedded Elasticsearch 7.17 / OpenSearch 2.19 node launcher used by
# tests/elasticsearch. Idempotent: Maven caches the jars in ~/.m2 and the build is skipped
# when the sources did not change since the last one.
set -euo pipefail
cd "$(dirname "$0")"
stamp=.build-stamp
sum=$(cat pom.xml */pom.xml $(find . -name '*.java' | sort) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -d es7/target/lib ] && [ -d os2/target/lib ]; then
  echo "esnode launcher up to date"
  exit 0
fi
JAVA_HOME=${ESNODE_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64} mvn -q -B package
echo "$sum" > "$stamp"
echo "esnode launcher built"
