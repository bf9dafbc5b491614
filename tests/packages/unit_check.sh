#!/bin/sh
# Runs inside the Debian root booted with systemd-nspawn (test_deb_install.py): starts the
# installed pybeat.service on the container's loopback, makes DNS traffic, stops the service and
# prints what the test checks, then powers the container off. Output: /root/unit-check.log.
exec >/root/unit-check.log 2>&1
sed -i 's/device: any/device: lo/' /etc/pybeat/pybeat.yml
systemctl start pybeat.service
sleep 3
systemctl show pybeat.service -p ActiveState -p User
grep -E '^(Uid|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/"$(systemctl show -p MainPID --value pybeat.service)"/status
echo "answered=$(python3.11 /root/dns_ping.py unit.example.test 20)"
sleep 1
systemctl stop pybeat.service
systemctl show pybeat.service -p Result -p ExecMainStatus
echo "events=$(cat /var/lib/pybeat/events/*.ndjson | grep -c unit.example.test)"
journalctl -u pybeat.service --no-pager -o cat
systemctl poweroff
