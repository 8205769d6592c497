#!/usr/bin/env bash
# An OpenSSH server on loopback for the `sftp:` tests and benchmarks, run
# as the current user with keys of its own; nothing outside DIR is read or
# written (as root, sshd also needs /run/sshd, made here).
#
# Usage: tests/support/sftpd.sh DIR PORT
#
# Writes into DIR (made if missing; keys kept from an earlier run):
#   host_ed25519       the server's key
#   id_ed25519         the client's key, the only one authorized
#   ssh_config         for `ssh -F` and `sftp -F`: host `voisin-test-sftp`
#                      (and 127.0.0.1) with the port, user and key, checked
#                      strictly against known_hosts
#   known_hosts        the server's key as [127.0.0.1]:PORT, [localhost]:PORT
#                      and voisin-test-sftp
#   bin/ssh            `ssh -F DIR/ssh_config`, to put first on PATH for
#                      programs that run plain `ssh` (restic, OpenDAL)
#   srv/               a folder for repositories
# then execs sshd in the foreground on 127.0.0.1:PORT, logging to stderr
# ("Server listening on 127.0.0.1 port PORT." once it is up). Stop it with
# `kill PID`; its sessions are its children (`pkill -P PID`).
#
# For example:
#   tests/support/sftpd.sh /tmp/sftp 2222 2>/tmp/sftp.log &
#   PATH=/tmp/sftp/bin:$PATH restic -r sftp:voisin-test-sftp:/tmp/sftp/srv/repo init
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 DIR PORT" >&2
  exit 2
fi
mkdir -p "$1/srv" "$1/bin"
dir="$(cd "$1" && pwd)"
port="$2"
user="$(id -un)"
host=voisin-test-sftp

for key in host_ed25519 id_ed25519; do
  [ -f "$dir/$key" ] || ssh-keygen -q -t ed25519 -N "" -C voisin-test -f "$dir/$key"
done
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
# Where the system's service would make it at boot: sshd wants it as root.
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd

cat >"$dir/sshd_config" <<CONFIG
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $user
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel VERBOSE
CONFIG

cat >"$dir/ssh_config" <<CONFIG
Host $host 127.0.0.1 localhost
  HostName 127.0.0.1
  Port $port
  User $user
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
CONFIG

key="$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")"
printf '%s %s\n' "[127.0.0.1]:$port" "$key" "[localhost]:$port" "$key" "$host" "$key" \
  >"$dir/known_hosts"

cat >"$dir/bin/ssh" <<WRAPPER
#!/bin/sh
# The test sftp server's client config, for programs that run plain ssh.
exec /usr/bin/ssh -F $dir/ssh_config "\$@"
WRAPPER
chmod 0755 "$dir/bin/ssh"

# An absolute path: sshd re-executes itself for each connection.
exec /usr/sbin/sshd -D -e -f "$dir/sshd_config"
