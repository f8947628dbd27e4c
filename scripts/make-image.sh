#!/bin/sh
# make-image.sh IMAGE[:TAG] [ROOTFS_DIR]
#
# Makes a small local Docker image without a registry, by `docker import` of a
# root filesystem, and prints the image's ID on stdout.
#
#   Without ROOTFS_DIR: builds a busybox root filesystem from this machine's
#   static busybox (Debian: apt-get install busybox-static): /bin/busybox with a
#   symlink for every applet (in /bin, and at the applet's usual path such as
#   /usr/bin/env), /tmp (1777), /etc/passwd and /etc/group with root and nobody,
#   /root and /workspace. Set BUSYBOX=/path/to/busybox to use another static
#   busybox binary.
#   With ROOTFS_DIR: imports that directory as it is (for example a
#   debootstrap tree, or an SDK unpacked from a vendor tarball).
#
# The image gets ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,
# CMD ["/bin/sh"], and a label ourci.rootfs=sha256:<hash of the imported tar>.
# Idempotent: when IMAGE already carries the same label (the same files), nothing
# is imported again and the existing ID is printed. (The tar is reproducible with
# GNU tar; with another tar every run imports again, which is still correct.)
# An image this script replaces under the same name is removed if nothing else
# uses it.
#
# Needs: docker (the CLI, talking to the engine that will run the image), tar,
# sha256sum. POSIX sh.
set -eu

usage() {
	echo "usage: $0 IMAGE[:TAG] [ROOTFS_DIR]" >&2
	exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
image=$1
rootfs=${2:-}
[ -n "$image" ] || usage

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ourci-make-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# build_busybox DIR: a minimal root filesystem around a static busybox.
build_busybox() {
	dir=$1
	busybox=${BUSYBOX:-/bin/busybox}
	if [ ! -x "$busybox" ]; then
		echo "make-image.sh: $busybox not found: apt-get install busybox-static (or set BUSYBOX to a static busybox)" >&2
		exit 1
	fi
	# A dynamically linked busybox (Debian's package "busybox") cannot run in
	# an image without a C library; ldd fails for static binaries.
	if command -v ldd >/dev/null 2>&1 && ldd "$busybox" >/dev/null 2>&1; then
		echo "make-image.sh: $busybox is dynamically linked: apt-get install busybox-static (or set BUSYBOX to a static busybox)" >&2
		exit 1
	fi

	umask 022
	mkdir -p "$dir/bin" "$dir/etc" "$dir/root" "$dir/tmp" "$dir/workspace" \
		"$dir/usr/bin" "$dir/usr/sbin" "$dir/usr/local/bin" "$dir/sbin"
	chmod 1777 "$dir/tmp"
	chmod 0700 "$dir/root"
	cp "$busybox" "$dir/bin/busybox"
	chmod 0755 "$dir/bin/busybox"

	# Every applet in /bin (the busybox binary itself is not run from the
	# rootfs: no chroot needed).
	"$busybox" --list >"$tmp/applets"
	while IFS= read -r applet; do
		case $applet in '' | busybox | */*) continue ;; esac
		ln -sf busybox "$dir/bin/$applet"
	done <"$tmp/applets"
	# ...and at its usual path too, so "#!/usr/bin/env sh" works.
	if "$busybox" --list-full >"$tmp/full" 2>/dev/null; then
		while IFS= read -r path; do
			case $path in '' | bin/* | /* | *..* | */) continue ;; */*) ;; *) continue ;; esac
			mkdir -p "$dir/${path%/*}"
			ln -sf /bin/busybox "$dir/$path"
		done <"$tmp/full"
	fi

	cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
	cat >"$dir/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
}

# GNU tar can write a reproducible archive: the same files give the same hash.
tarflags=
if tar --version 2>/dev/null | grep -q 'GNU tar'; then
	tarflags='--sort=name --mtime=@0 --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime'
fi

if [ -z "$rootfs" ]; then
	rootfs=$tmp/rootfs
	mkdir "$rootfs"
	build_busybox "$rootfs"
	if [ -n "$tarflags" ]; then
		tarflags="$tarflags --owner=0 --group=0 --numeric-owner"
	fi
elif [ ! -d "$rootfs" ]; then
	echo "make-image.sh: $rootfs is not a directory" >&2
	exit 1
fi

# shellcheck disable=SC2086 # tarflags is a list of flags
tar -C "$rootfs" $tarflags -cf "$tmp/rootfs.tar" .
sum=sha256:$(sha256sum "$tmp/rootfs.tar" | cut -d' ' -f1)

old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
if [ -n "$old" ]; then
	label=$(docker image inspect -f '{{index .Config.Labels "ourci.rootfs"}}' "$image" 2>/dev/null || true)
	if [ "$label" = "$sum" ]; then
		echo "$old"
		exit 0
	fi
fi

docker import \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'CMD ["/bin/sh"]' \
	--change "LABEL ourci.rootfs=$sum" \
	- "$image" <"$tmp/rootfs.tar" >/dev/null

id=$(docker image inspect -f '{{.Id}}' "$image")
if [ -n "$old" ] && [ "$old" != "$id" ]; then
	# The replaced image, unless another tag or a container still uses it.
	docker image rm "$old" >/dev/null 2>&1 || true
fi
echo "$id"
