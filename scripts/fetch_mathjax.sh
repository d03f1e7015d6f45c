#!/usr/bin/env bash
# Put MathJax 3 (from the npm registry) into book/_static/mathjax so the site needs no CDN.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=book/_static/mathjax
[ -f "$dest/tex-mml-chtml.js" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mathjax@3.2.2 >/dev/null && tar xzf mathjax-3.2.2.tgz)
mkdir -p "$dest/output/chtml"
cp "$tmp/package/es5/tex-mml-chtml.js" "$dest/"
cp -r "$tmp/package/es5/output/chtml/fonts" "$dest/output/chtml/"
