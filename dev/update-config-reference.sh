#!/usr/bin/env bash
# Puts the config reference generated from the schema (`attn-train config-reference`) between the
# README's markers. Run after changing a row of Sources/AttnTrain/Config/ConfigSchema.swift; the
# test ConfigTests.readmeCarriesTheGeneratedReference fails until the README matches.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -q --product attn-train
reference="$(swift build --show-bin-path)/attn-train"
python3 - "$reference" <<'PY'
import re, subprocess, sys
generated = subprocess.run([sys.argv[1], "config-reference"], capture_output=True, text=True, check=True).stdout
readme = open("README.md").read()
begin = readme.index("<!-- config-reference: begin")
start = readme.index("-->\n", begin) + 4
end = readme.index("<!-- config-reference: end -->")
open("README.md", "w").write(readme[:start] + generated + readme[end:])
PY
echo "README.md: config reference updated"
