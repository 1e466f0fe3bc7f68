#!/bin/sh
# Makes the raw root-filesystem disk of the demo@v1 recipe the way Drover's bake does (busybox,
# the recipe's files, the build script in /.drover), for the raw-steps and Packer baselines.
#   bake-rootfs.sh RECIPE_DIR STAGE      → STAGE/disk.raw
set -eu
recipe=$1 stage=$2
root=$stage/rootfs
rm -rf "$root"
for d in bin sbin dev proc sys etc tmp run root var usr/bin usr/sbin .drover; do mkdir -p "$root/$d"; done
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$recipe/files/init" "$root/init"
install -m 0644 "$recipe/files/version-v1" "$root/etc/drover-version"
cat > "$root/.drover/build.sh" <<'SCRIPT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
[ -x /bin/busybox ] && /bin/busybox --install -s /bin 2>/dev/null
echo "+ step 1"
( echo "baked by drover" > /etc/drover-baked ) || exit $?
echo "+ step 2"
( test -x /init ) || exit $?
exit 0
SCRIPT
mkfs.ext4 -q -F -L drover -d "$root" "$stage/disk.raw" 64M
