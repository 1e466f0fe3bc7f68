#!/bin/sh
# Packer's side of the bake comparison: the same root-filesystem step, then `packer build` of
# packer/demo.json (boot, commands, power-off, qcow2, checksum). Packer has no input cache, so
# this is also what a "rebuild with nothing changed" costs with Packer.
#   packer-bake.sh RECIPE_DIR KERNEL INITRD STAGE
set -eu
recipe=$1 kernel=$2 initrd=$3 stage=$4
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$stage/out"
mkdir -p "$stage"
sh "$here/bake-rootfs.sh" "$recipe" "$stage"
export PACKER_CACHE_DIR="$stage/cache" CHECKPOINT_DISABLE=1 PACKER_LOG=0
packer build -color=false -var "kernel=$kernel" -var "initrd=$initrd" -var "disk=$stage/disk.raw" \
  -var "out=$stage/out" -var "console=$stage/console.log" "$here/packer/demo.json" >"$stage/packer.log" 2>&1 || {
  tail -20 "$stage/packer.log" >&2; exit 1; }
grep -q 'DROVER-BUILD-EXIT=0' "$stage/console.log" || { echo "packer-bake: build commands failed" >&2; exit 1; }
