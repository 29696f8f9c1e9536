#!/bin/sh
# Stands in for git. Counts the calls that can change something (update-ref, worktree, add,
# commit-tree, apply, read-tree) in $WT_KILL_DIR/count and, at that count's number
# $WT_PAUSE_AT, says which call it is in $WT_KILL_DIR/reached and sleeps instead of running
# git (for a SIGKILL just before it). Every other call runs the real git.
# With WT_RESUME=1 it waits for $WT_KILL_DIR/go instead, then runs git.
skip_next=""
command=""
for arg in "$@"; do
  if [ -n "$skip_next" ]; then skip_next=""; continue; fi
  case "$arg" in
    -c) skip_next=1 ;;
    -*) ;;
    *) command="$arg"; break ;;
  esac
done
case "$command" in
  update-ref|worktree|add|commit-tree|apply|read-tree) ;;
  *) exec git "$@" ;;
esac
count_file="$WT_KILL_DIR/count"
n=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$count_file"
if [ "$n" = "$WT_PAUSE_AT" ]; then
  printf '%s\n' "$*" > "$WT_KILL_DIR/reached.tmp" && mv "$WT_KILL_DIR/reached.tmp" "$WT_KILL_DIR/reached"
  # WT_RESUME=1: wait for $WT_KILL_DIR/go, then run git after all
  [ "$WT_RESUME" = 1 ] || exec sleep 600
  while [ ! -e "$WT_KILL_DIR/go" ]; do sleep 0.01; done
fi
exec git "$@"
