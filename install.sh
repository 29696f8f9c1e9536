#!/usr/bin/env bash
# agent-async installer.
#
#   ./install.sh                         install from this checkout; asks which MCP clients to register
#   ./install.sh --yes                   ... and registers every detected client without asking
#   ./install.sh --clients=claude-code,codex
#   ./install.sh --source=<git URL | path to a checkout | npm:agent-async-mcp[@version]>
#   ./install.sh --ref=<tag or branch>   install that release or branch of the source
#   ./install.sh --prefix=<dir> --bin-dir=<dir>
#   ./install.sh uninstall [--yes] [--purge]
#
# It installs into ~/.local/share/agent-async-mcp (dependencies and build included) and links
# ~/.local/bin/agent-async. Running it again changes nothing more. `agent-async update` follows
# what was installed: a release tag moves to the newest vX.Y.Z tag; a branch (an install from a
# checkout, or --ref=<branch>) moves to the newest commit of that branch. `uninstall` (or
# `agent-async uninstall`) takes back everything it added.
set -euo pipefail

PREFIX="${AGENT_ASYNC_PREFIX:-$HOME/.local/share/agent-async-mcp}"
BIN_DIR="${AGENT_ASYNC_BIN_DIR:-$HOME/.local/bin}"
DEFAULT_SOURCE="https://github.com/agent-async/agent-async-mcp.git"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" 2>/dev/null && pwd || true)"
if [ -n "$HERE" ] && [ -f "$HERE/package.json" ] && grep -q '"name": "agent-async-mcp"' "$HERE/package.json"; then
  DEFAULT_SOURCE="$HERE"
fi
SOURCE="${AGENT_ASYNC_SOURCE:-$DEFAULT_SOURCE}"
REF="${AGENT_ASYNC_REF:-}"
ACTION=install
YES=0
PURGE=0
CLIENTS=""

say() { printf '%s\n' "$*"; }
# The comment block at the top of this file, without the comment marks.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
fail() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

for arg in "$@"; do
  case "$arg" in
    install) ACTION=install ;;
    uninstall) ACTION=uninstall ;;
    --yes|-y) YES=1 ;;
    --purge) PURGE=1 ;;
    --clients=*) CLIENTS="${arg#--clients=}" ;;
    --source=*) SOURCE="${arg#--source=}" ;;
    --ref=*) REF="${arg#--ref=}" ;;
    --prefix=*) PREFIX="${arg#--prefix=}" ;;
    --bin-dir=*) BIN_DIR="${arg#--bin-dir=}" ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$arg' (see --help)" ;;
  esac
done

need_node() {
  command -v node >/dev/null 2>&1 || fail "Node.js >= 20.19 is required (https://nodejs.org); node was not found"
  command -v npm >/dev/null 2>&1 || fail "npm is required; it was not found"
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
    || fail "Node.js >= 20.19 is required; this is $(node --version)"
}

# Folders that do not exist yet, outermost first (so uninstall can remove exactly those).
missing_dirs() {
  local dir="$1" out=""
  while [ ! -e "$dir" ]; do out="$dir${out:+
$out}"; dir="$(dirname "$dir")"; done
  printf '%s' "$out"
}

package_root() {
  case "$SOURCE" in
    npm:*) printf '%s/node_modules/agent-async-mcp' "$PREFIX" ;;
    *) printf '%s' "$PREFIX" ;;
  esac
}

# Whether a folder holds an install of ours (so a broken one is removed, and nothing else ever).
is_our_install() {
  [ -f "$1/.install.json" ] || [ -f "$1/node_modules/agent-async-mcp/package.json" ] \
    || { [ -f "$1/package.json" ] && grep -q '"name": "agent-async-mcp"' "$1/package.json"; }
}

uninstall() {
  local root; root="$(package_root)"
  # a git or local install has the launcher in the prefix, an npm one in its node_modules
  [ -f "$root/bin/agent-async.js" ] || root="$PREFIX/node_modules/agent-async-mcp"
  if [ -f "$root/bin/agent-async.js" ] && command -v node >/dev/null 2>&1; then
    local args=(uninstall --yes)
    [ "$PURGE" = 1 ] && args+=(--purge)
    node "$root/bin/agent-async.js" "${args[@]}"
    return
  fi
  # no working install to ask: take out what is left of one, and say exactly what
  local removed=()
  if [ -L "$BIN_DIR/agent-async" ] && case "$(readlink "$BIN_DIR/agent-async")" in */bin/agent-async.js) true ;; *) false ;; esac; then
    rm -f "$BIN_DIR/agent-async"
    removed+=("the link $BIN_DIR/agent-async")
  fi
  if [ -e "$PREFIX" ]; then
    if is_our_install "$PREFIX"; then
      rm -rf "$PREFIX"
      removed+=("$PREFIX")
    else
      say "left $PREFIX alone: it does not hold an agent-async install"
    fi
  fi
  if [ "${#removed[@]}" -eq 0 ]; then
    say "agent-async is not installed in $PREFIX; nothing to remove"
  else
    for what in "${removed[@]}"; do say "removed $what"; done
  fi
}

fetch_source() {
  case "$SOURCE" in
    npm:*)
      local spec="${SOURCE#npm:}"
      [ -f "$PREFIX/node_modules/agent-async-mcp/package.json" ] && { say "already installed in $PREFIX"; return; }
      mkdir -p "$PREFIX"
      say "installing $spec from npm into $PREFIX"
      npm install --prefix "$PREFIX" --no-audit --no-fund "$spec" >/dev/null
      ;;
    *)
      command -v git >/dev/null 2>&1 || fail "git is required to install from $SOURCE"
      if [ -d "$PREFIX/.git" ]; then
        say "already installed in $PREFIX ($(describe_checkout))"
        return
      fi
      say "cloning $SOURCE into $PREFIX"
      git -c advice.detachedHead=false clone --quiet "$SOURCE" "$PREFIX"
      local ref="$REF"
      if [ -z "$ref" ] && [ ! -d "$SOURCE" ]; then
        ref="$(git -C "$PREFIX" tag --list 'v[0-9]*.[0-9]*.[0-9]*' | sort -V | tail -n 1)"
      fi
      [ -n "$ref" ] && git -C "$PREFIX" -c advice.detachedHead=false checkout --quiet "$ref"
      say "$(describe_checkout)"
      ;;
  esac
}

# What the installed checkout is at, and so what `agent-async update` follows.
describe_checkout() {
  local branch
  if branch="$(git -C "$PREFIX" symbolic-ref --quiet --short HEAD)"; then
    printf "on branch %s at %s; 'agent-async update' moves it to the newest commit of %s" "$branch" "$(git -C "$PREFIX" rev-parse --short HEAD)" "$branch"
  else
    printf "at %s; 'agent-async update' moves it to the newest release tag" "$(git -C "$PREFIX" describe --tags --always)"
  fi
}

build() {
  case "$SOURCE" in npm:*) return ;; esac
  local head; head="$(git -C "$PREFIX" rev-parse HEAD)"
  if [ -f "$PREFIX/dist/cli/main.js" ] && [ "$(cat "$PREFIX/.install-built" 2>/dev/null)" = "$head" ]; then
    return
  fi
  say "installing dependencies and building (npm ci)"
  (cd "$PREFIX" && npm ci --no-audit --no-fund --prefer-offline >/dev/null)
  printf '%s\n' "$head" > "$PREFIX/.install-built"
}

write_manifest() {
  local root="$1" created="$2" manifest="$1/.install.json"
  [ -f "$manifest" ] && return
  node -e '
    const [file, prefix, link, source, created] = process.argv.slice(1);
    const dirs = created.split("\n").filter(Boolean);
    require("fs").writeFileSync(file, JSON.stringify({ schema_version: 1, prefix, bin_link: link, created_dirs: dirs, source }, null, 2) + "\n");
  ' "$manifest" "$PREFIX" "$BIN_DIR/agent-async" "$SOURCE" "$created"
}

choose_clients() {
  local cli="$1"
  if [ -n "$CLIENTS" ]; then printf '%s' "$CLIENTS" | tr ',' '\n'; return; fi
  local detected
  detected="$(node "$cli" list-agents --json | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      for (const c of JSON.parse(s).clients) if (c.detected) console.log(c.client);
    });')"
  [ -z "$detected" ] && return
  if [ "$YES" = 1 ]; then printf '%s\n' "$detected"; return; fi
  if ! { true < /dev/tty; } 2>/dev/null; then
    say "not asking (no terminal): register a client later with 'agent-async add-agent <client>'" >&2
    return
  fi
  local client answer
  for client in $detected; do
    printf 'Register agent-async with %s? [Y/n] ' "$client" > /dev/tty
    read -r answer < /dev/tty || answer=n
    case "$answer" in [nN]*) ;; *) printf '%s\n' "$client" ;; esac
  done
}

install() {
  need_node
  local created
  created="$(missing_dirs "$PREFIX")"
  local bin_created
  bin_created="$(missing_dirs "$BIN_DIR")"
  [ -n "$bin_created" ] && created="${created:+$created
}$bin_created"
  fetch_source
  build
  local root; root="$(package_root)"
  local cli="$root/bin/agent-async.js"
  [ -f "$cli" ] || fail "$cli is missing after the install"
  mkdir -p "$BIN_DIR"
  if [ "$(readlink "$BIN_DIR/agent-async" 2>/dev/null)" != "$cli" ]; then
    ln -sfn "$cli" "$BIN_DIR/agent-async"
  fi
  write_manifest "$root" "$created"
  say "agent-async $(node "$cli" --version) installed: $BIN_DIR/agent-async"
  case ":$PATH:" in
    *":$BIN_DIR:"*) ;;
    *) say "  $BIN_DIR is not on your PATH. Add this line to ~/.bashrc or ~/.zshrc, then open a new terminal:"
       say "    export PATH=\"$BIN_DIR:\$PATH\"" ;;
  esac
  say ""
  node "$cli" list-agents
  say ""
  local client
  for client in $(choose_clients "$cli"); do
    node "$cli" add-agent "$client" || say "  could not register $client (see above)"
  done
  say ""
  say "Next: 'agent-async doctor' checks the set-up, 'agent-async status' watches the jobs,"
  say "      './install.sh uninstall' (or 'agent-async uninstall') removes everything again."
}

case "$ACTION" in
  install) install ;;
  uninstall) uninstall ;;
esac
