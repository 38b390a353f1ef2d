# Shared functions of the guest image builders (driver-domain/image, guest-frontends/image):
# everything comes from Debian packages; the kernel is resolved from linux-image-amd64.
# Sourced, not run. Functions print progress on stderr and fail the script on error (set -e).

image_log() { echo "  [image $IMAGE_ROLE] $*" >&2; }

# The versioned kernel package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64.
image_kernel_package() {
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  if [ -z "$pkg" ]; then
    echo "image: cannot resolve the kernel from linux-image-amd64 (run apt-get update?)" >&2
    return 1
  fi
  echo "$pkg"
}

# Downloads (apt-get download) and unpacks (dpkg -x) the kernel package into $1, once.
# Sets KERNEL_DIR (the unpacked tree) and KERNEL_VERSION (its uname -r).
image_fetch_kernel() {
  local cache=$1 pkg deb
  pkg=$(image_kernel_package)
  KERNEL_VERSION=${pkg#linux-image-}
  KERNEL_DIR=$cache/$pkg
  if [ -f "$KERNEL_DIR/.unpacked" ]; then
    return 0
  fi
  mkdir -p "$cache"
  image_log "downloading $pkg (apt-get download)"
  # _apt cannot write into a root-only folder; download to a world-writable temporary one.
  local dl
  dl=$(mktemp -d)
  chmod 0777 "$dl"
  (cd "$dl" && apt-get download -q "$pkg" >&2)
  deb=$(ls "$dl"/"$pkg"_*.deb)
  image_log "unpacking $(basename "$deb")"
  rm -rf "$KERNEL_DIR"
  dpkg -x "$deb" "$KERNEL_DIR"
  rm -rf "$dl"
  depmod -b "$KERNEL_DIR" "$KERNEL_VERSION"
  touch "$KERNEL_DIR/.unpacked"
}

# Copies modules and everything they depend on from the kernel tree into the image root $1.
# Built-in modules need nothing. Writes modules.dep for busybox modprobe.
image_add_modules() {
  local root=$1; shift
  local m line path
  for m in "$@"; do
    modprobe -d "$KERNEL_DIR" -S "$KERNEL_VERSION" --show-depends "$m" >/dev/null ||
      { echo "image: module $m not in $KERNEL_VERSION" >&2; return 1; }
    while read -r line; do
      case $line in
        insmod\ *)
          path=${line#insmod }
          path=${path%% *}
          local rel=${path#"$KERNEL_DIR"}
          mkdir -p "$root$(dirname "$rel")"
          cp -n "$path" "$root$rel"
          ;;
      esac
    done < <(modprobe -d "$KERNEL_DIR" -S "$KERNEL_VERSION" --show-depends "$m")
  done
  cp "$KERNEL_DIR/lib/modules/$KERNEL_VERSION"/modules.{builtin,builtin.modinfo,order} \
     "$root/lib/modules/$KERNEL_VERSION/" 2>/dev/null || true
  depmod -b "$root" "$KERNEL_VERSION"
}

# Copies a host program and the shared libraries it needs (ldd) into the image root $1.
image_add_program() {
  local root=$1 prog=$2 lib
  [ -x "$prog" ] || { echo "image: $prog is missing (install its Debian package)" >&2; return 1; }
  mkdir -p "$root$(dirname "$prog")"
  cp -L "$prog" "$root$prog"
  for lib in $(ldd "$prog" 2>/dev/null | grep -o '/[^ ]*'); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# The base every image has: busybox-static and its applets, the folders init needs.
image_add_base() {
  local root=$1
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,mnt,var/log,usr/bin,usr/sbin}
  cp /bin/busybox "$root/bin/busybox"
  # Links made at build time, so the image works even before init runs --install.
  local applet
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
  echo "root:x:0:" > "$root/etc/group"
}

# Packs the image root $1 into the gzip-compressed cpio initramfs $2.
image_pack() {
  local root=$1 out=$2
  (cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) |
    gzip -6 > "$out.tmp"
  mv "$out.tmp" "$out"
}

# A key over every input of the image: rebuild only when it changes.
# Arguments: files whose contents matter (scripts, init, binaries).
image_inputs_key() {
  {
    image_kernel_package
    apt-cache policy "$(image_kernel_package)" 2>/dev/null | awk '/Candidate/ { print $2 }'
    sha256sum "$@" /bin/busybox
  } | sha256sum | cut -d' ' -f1
}

# An IMAGE_BINARIES entry is PATH or NAME=PATH (NAME has no '/'): the file, and its name in the image.
image_binary_path() {
  local name=${1%%=*}
  if [ "$name" != "$1" ] && [ "${name#*/}" = "$name" ]; then echo "${1#*=}"; else echo "$1"; fi
}
image_binary_name() {
  local path
  path=$(image_binary_path "$1")
  if [ "$path" != "$1" ]; then echo "${1%%=*}"; else basename "$1"; fi
}

# Builds an image. The caller sets IMAGE_ROLE, IMAGE_MODULES (array), IMAGE_PROGRAMS (array, may be
# empty), IMAGE_INIT (its /init), IMAGE_HOSTNAME, and may set IMAGE_BINARIES (array: statically
# linked programs of ours, built by meson, installed as /usr/bin/NAME without libraries, stripped;
# an entry NAME=PATH installs PATH as /usr/bin/NAME) and define
# image_customize ROOT for extra steps. Arguments: OUTDIR CACHEDIR AGENT_BINARY [STAMP]. Writes
# OUTDIR/vmlinuz, OUTDIR/initrd.gz and OUTDIR/kernel-version; does nothing when no input changed
# since the last build.
image_build() {
  local out=$1 cache=$2 agent=$3 stamp=${4:-}
  local key b
  local binaries=()
  for b in ${IMAGE_BINARIES[@]+"${IMAGE_BINARIES[@]}"}; do
    binaries+=("$(image_binary_path "$b")")
  done
  key=$(image_inputs_key "$0" "${BASH_SOURCE[0]}" "$IMAGE_INIT" "$agent" ${IMAGE_PROGRAMS[@]+"${IMAGE_PROGRAMS[@]}"} \
        ${binaries[@]+"${binaries[@]}"})
  if [ -f "$out/initrd.gz" ] && [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; then
    image_log "up to date ($out)"
  else
    image_fetch_kernel "$cache"
    local root
    root=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: root is local
    trap "rm -rf '$root'" EXIT
    image_log "kernel $KERNEL_VERSION; adding busybox, modules: ${IMAGE_MODULES[*]}"
    image_add_base "$root"
    image_add_modules "$root" "${IMAGE_MODULES[@]}"
    if [ ${#IMAGE_PROGRAMS[@]} -gt 0 ]; then
      image_log "adding ${IMAGE_PROGRAMS[*]} and their libraries"
      local p
      for p in "${IMAGE_PROGRAMS[@]}"; do
        image_add_program "$root" "$p"
      done
    fi
    install -m 0755 "$IMAGE_INIT" "$root/init"
    install -m 0755 "$agent" "$root/sbin/ddtk-guest-agent"
    for b in ${IMAGE_BINARIES[@]+"${IMAGE_BINARIES[@]}"}; do
      image_log "adding $(image_binary_name "$b")"
      # Stripped: the debugging information would be most of the image, and no debugger reads it there.
      install -m 0755 -s "$(image_binary_path "$b")" "$root/usr/bin/$(image_binary_name "$b")"
    done
    echo "$IMAGE_HOSTNAME" > "$root/etc/hostname"
    if declare -F image_customize >/dev/null; then
      image_customize "$root"
    fi
    mkdir -p "$out"
    image_log "packing initramfs"
    image_pack "$root" "$out/initrd.gz"
    cp "$KERNEL_DIR/boot/vmlinuz-$KERNEL_VERSION" "$out/vmlinuz.tmp"
    mv "$out/vmlinuz.tmp" "$out/vmlinuz"
    echo "$KERNEL_VERSION" > "$out/kernel-version"
    echo "$key" > "$out/.key"
    image_log "done: $out/initrd.gz ($(du -h "$out/initrd.gz" | cut -f1))"
  fi
  [ -z "$stamp" ] || touch "$stamp"
}
