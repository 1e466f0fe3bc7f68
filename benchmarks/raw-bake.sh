#!/bin/sh
# The raw steps of a cold bake with no tool around them: make the root filesystem, boot the
# build machine straight with qemu-system (same kernel, build initramfs, command line and disk as
# Drover's build machine) until it powers off, convert to qcow2, checksum. Prints each step's time.
#   raw-bake.sh RECIPE_DIR KERNEL INITRD STAGE
set -eu
recipe=$1 kernel=$2 initrd=$3 stage=$4
here=$(dirname "$0")
now() { date +%s.%N; }
step() { printf 'step %s %.3f\n' "$1" "$(echo "$(now) - $2" | bc)"; }
mkdir -p "$stage"
t=$(now); sh "$here/bake-rootfs.sh" "$recipe" "$stage"; step filesystem "$t"
t=$(now)
qemu-system-x86_64 -machine pc,accel=tcg -cpu qemu64 -m 256 -smp 1 -nodefaults -no-user-config \
  -display none -no-reboot -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 quiet drover.build=1" \
  -drive "file=$stage/disk.raw,format=raw,if=virtio,cache=unsafe" \
  -chardev "file,id=s0,path=$stage/console.log" -serial chardev:s0
grep -q 'DROVER-BUILD-EXIT=0' "$stage/console.log" || { echo "raw-bake: build commands failed" >&2; exit 1; }
step commands "$t"
t=$(now); qemu-img convert -f raw -O qcow2 "$stage/disk.raw" "$stage/demo.qcow2"; step convert "$t"
t=$(now); sha256sum "$stage/demo.qcow2" > "$stage/demo.qcow2.sha256"; step checksum "$t"
