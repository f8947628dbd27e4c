#!/bin/sh
# esptool.sh: the stand-in for the rig's flashing tool, for the seed's
# ci/fw/esp8266_test_driver.sh:
#     esptool.sh [--port PORT] [--baud N] write_flash ADDRESS IMAGE
# It simulates an ESP-12E board in ./esp-12e of the directory it runs in (a
# task's workspace, so that two tests never share a board): IMAGE becomes
# the board's flash, and the board boots it with an empty file system and
# web root. Exits 2 on a usage error, 1 when IMAGE cannot be read.
set -eu
port=/dev/ttyUSB0
while [ $# -gt 0 ]; do
	case $1 in
	--port | -p) port=$2; shift 2 ;;
	--baud | -b) shift 2 ;;
	*) break ;;
	esac
done
if [ $# -ne 3 ] || [ "$1" != write_flash ]; then
	echo "esptool.sh: usage: esptool.sh [--port PORT] [--baud N] write_flash ADDRESS IMAGE" >&2
	exit 2
fi
addr=$2 image=$3
if [ ! -r "$image" ]; then
	echo "esptool.sh: cannot read the image $image" >&2
	exit 1
fi
board=esp-12e
echo "esptool.sh (OurCI stand-in): serial port $port, chip ESP8266EX on an ESP-12E module"
rm -rf "$board"
mkdir -p "$board/fs" "$board/www"
cp "$image" "$board/flash"
echo "esptool.sh: wrote $(wc -c <"$image" | tr -d ' ') bytes at $addr from $image, cksum $(cksum <"$image" | cut -d' ' -f1)"
echo "esptool.sh: hard resetting; the board boots $(grep -E '^(board|ota|sdk|version)=' "$board/flash" | tr '\n' ' ' | sed 's/ $//')"
