#!/usr/bin/python3
"""An emulated BLE heart-rate strap on python-dbusmock's BlueZ, for Vigil's btleplug test.

Run with DBUS_SYSTEM_BUS_ADDRESS pointing at a private bus where `python3 -m dbusmock --system
--template bluez5` runs. Prints "ready", then reads commands from stdin, one per line:
  notify HEX     the Heart Rate Measurement characteristic notifies HEX
  disconnect     the link drops (as when the strap leaves range)
and answers "ok" after each.
"""
import sys
import time

import dbus

HRS = "0000180d-0000-1000-8000-00805f9b34fb"
HRM = "00002a37-0000-1000-8000-00805f9b34fb"
DEVICE = "org.bluez.Device1"
CHAR = "org.bluez.GattCharacteristic1"
MOCK = "org.freedesktop.DBus.Mock"

bus = dbus.SystemBus()
for _ in range(100):
    if bus.name_has_owner("org.bluez"):
        break
    time.sleep(0.05)

bluez = dbus.Interface(bus.get_object("org.bluez", "/org/bluez"), "org.bluez.Mock")
bluez.AddAdapter("hci0", "vigil-test")
dev = bluez.AddDevice("hci0", "C0:FF:EE:00:00:42", "Vigil Emulated HR")
dev_mock = dbus.Interface(bus.get_object("org.bluez", dev), MOCK)
# The template's Connect only signals; keep the properties true as BlueZ does.
dev_mock.AddMethod(DEVICE, "Connect", "", "",
                   'self.UpdateProperties("org.bluez.Device1", {"Connected": dbus.Boolean(True), '
                   '"ServicesResolved": dbus.Boolean(True)})')
dev_mock.AddMethod(DEVICE, "Disconnect", "", "",
                   'self.UpdateProperties("org.bluez.Device1", {"Connected": dbus.Boolean(False), '
                   '"ServicesResolved": dbus.Boolean(False)})')

root = dbus.Interface(bus.get_object("org.bluez", "/"), MOCK)
svc = dev + "/service0010"
# A service with properties only makes introspection XML that btleplug rejects: add a method.
root.AddObject(svc, "org.bluez.GattService1",
               {"UUID": dbus.String(HRS), "Device": dbus.ObjectPath(dev), "Primary": dbus.Boolean(True),
                "Includes": dbus.Array([], signature="o")},
               [("VigilDummy", "", "", "")])
char = svc + "/char0011"
root.AddObject(char, CHAR,
               {"UUID": dbus.String(HRM), "Service": dbus.ObjectPath(svc),
                "Flags": dbus.Array(["notify"], signature="s"),
                "Value": dbus.Array([], signature="y"), "Notifying": dbus.Boolean(False)},
               [("ReadValue", "a{sv}", "ay", 'ret = self.Get("org.bluez.GattCharacteristic1", "Value")'),
                ("WriteValue", "aya{sv}", "", ""),
                ("StartNotify", "", "", 'self.UpdateProperties("org.bluez.GattCharacteristic1", {"Notifying": dbus.Boolean(True)})'),
                ("StopNotify", "", "", 'self.UpdateProperties("org.bluez.GattCharacteristic1", {"Notifying": dbus.Boolean(False)})')])
char_mock = dbus.Interface(bus.get_object("org.bluez", char), MOCK)
dev_mock.UpdateProperties(DEVICE, {"UUIDs": dbus.Array([HRS], signature="s"),
                                   "ServicesResolved": dbus.Boolean(True)})
print("ready", flush=True)

for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "notify":
        value = bytes.fromhex(words[1])
        char_mock.UpdateProperties(CHAR, {"Value": dbus.Array(value, signature="y")})
    elif words[0] == "disconnect":
        dev_mock.UpdateProperties(DEVICE, {"Connected": dbus.Boolean(False),
                                           "ServicesResolved": dbus.Boolean(False)})
    print("ok", flush=True)
