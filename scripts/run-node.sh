#!/usr/bin/env bash
# The README's main job: set up a fresh Debian machine (as root) and run the node agent in standalone
# mode on the embedded default (examples/manifests + examples/services.yaml) over a containerd
# started here. Extra arguments go to `worknode node` (for example --log-level debug).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root_linux
ensure_node
ensure_system_packages "${SYSTEM_PACKAGES[@]}"
install_and_build
cd "$ROOT"
exec node scripts/node-lab.mjs "$@"
