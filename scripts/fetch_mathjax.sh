#!/usr/bin/env bash
# Put MathJax 3 (from the npm registry) where the site serves it, _static/mathjax, so it needs
# no CDN. It lives in book/_mathjax/_static/mathjax, copied by html_extra_path (_config.yml):
# jupyter-book would add every .js under book/_static to every page as a script of its own,
# loading MathJax twice and its font file as a script besides.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=book/_mathjax/_static/mathjax
[ -f "$dest/tex-mml-chtml.js" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mathjax@3.2.2 >/dev/null && tar xzf mathjax-3.2.2.tgz)
mkdir -p "$dest/output/chtml"
cp "$tmp/package/es5/tex-mml-chtml.js" "$dest/"
cp -r "$tmp/package/es5/output/chtml/fonts" "$dest/output/chtml/"
