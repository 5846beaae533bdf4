#!/bin/sh
# Install the one-file `kiln` executable as a systemd service on this host.
#   sudo packaging/install.sh [PATH/TO/kiln]        (default: dist/kiln)
# Copies the binary to /usr/local/bin/kiln, creates the `kiln` user (systemd-sysusers), installs
# and starts kiln.service. Re-running it upgrades the binary and restarts the service.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-"$here/dist/kiln"}
if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0)" >&2
    exit 1
fi
if [ ! -x "$binary" ]; then
    echo "install.sh: $binary is not an executable; build it with 'make binary' or pass its path" >&2
    exit 1
fi
install -m 0755 "$binary" /usr/local/bin/kiln
install -m 0644 "$here/systemd/kiln.sysusers.conf" /usr/lib/sysusers.d/kiln.conf
systemd-sysusers /usr/lib/sysusers.d/kiln.conf
install -m 0644 "$here/systemd/kiln.service" /etc/systemd/system/kiln.service
systemctl daemon-reload
systemctl enable kiln.service
systemctl restart kiln.service
echo "Kiln is running: systemctl status kiln; logs: journalctl -u kiln"
