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
# the npm registry's tarball, through npm when it is installed, else fetched directly and checked
# against the registry's published sha512 (so node/npm is not required)
if command -v npm >/dev/null; then
  (cd "$tmp" && npm pack --silent mathjax@3.2.2 >/dev/null)
else
  python3 - "$tmp/mathjax-3.2.2.tgz" <<'PY'
import base64, hashlib, sys, urllib.request
url = "https://registry.npmjs.org/mathjax/-/mathjax-3.2.2.tgz"
want = "Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
try:
    data = urllib.request.urlopen(url, timeout=120).read()
except OSError as e:
    sys.exit(f"fetch_mathjax: cannot download {url} ({e}); the book serves MathJax locally and "
             "needs it once (install npm, or copy it to book/_mathjax/_static/mathjax)")
if base64.b64encode(hashlib.sha512(data).digest()).decode() != want:
    sys.exit(f"fetch_mathjax: {url} does not match the registry's sha512 for mathjax 3.2.2")
open(sys.argv[1], "wb").write(data)
PY
fi
(cd "$tmp" && tar xzf mathjax-3.2.2.tgz)
mkdir -p "$dest/output/chtml"
cp "$tmp/package/es5/tex-mml-chtml.js" "$dest/"
cp -r "$tmp/package/es5/output/chtml/fonts" "$dest/output/chtml/"
