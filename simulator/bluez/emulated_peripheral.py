#!/usr/bin/python3
"""A BLE peripheral on python-dbusmock's emulated BlueZ, driven over stdin by vigil-sim.

Run with DBUS_SYSTEM_BUS_ADDRESS pointing at a private bus where `python3 -m dbusmock --system
--template bluez5` runs. Arguments: ADDRESS NAME SERVICE CHAR:FLAGS [CHAR:FLAGS ...], with 16-bit
UUIDs in hex and flags like notify, indicate, read (joined by '+'). Prints "ready", then reads
commands, one per line, answering "ok" after each:
  notify CHAR HEX   the characteristic notifies (or indicates) the value HEX
  disconnect        the link drops
  away              the link drops and connecting fails, as out of range
  back              in range again
"""
import sys
import time

import dbus

DEVICE = "org.bluez.Device1"
CHAR = "org.bluez.GattCharacteristic1"
MOCK = "org.freedesktop.DBus.Mock"


def uuid128(short):
    return f"0000{short.lower()}-0000-1000-8000-00805f9b34fb"


address, name, service, *chars = sys.argv[1:]
bus = dbus.SystemBus()
for _ in range(200):
    if bus.name_has_owner("org.bluez"):
        break
    time.sleep(0.05)

bluez = dbus.Interface(bus.get_object("org.bluez", "/org/bluez"), "org.bluez.Mock")
adapters = [p for p in dbus.Interface(bus.get_object("org.bluez", "/"), "org.freedesktop.DBus.ObjectManager")
            .GetManagedObjects() if str(p).count("/") == 3]
if not adapters:
    bluez.AddAdapter("hci0", "vigil-sim")
dev = bluez.AddDevice("hci0", address, name)
dev_mock = dbus.Interface(bus.get_object("org.bluez", dev), MOCK)
# The template's Connect only signals; keep the properties true as BlueZ does.
dev_mock.AddProperty(DEVICE, "VigilAway", dbus.Boolean(False))
dev_mock.AddMethod(DEVICE, "Connect", "", "",
                   'if self.Get("org.bluez.Device1", "VigilAway"):\n'
                   '    raise dbus.exceptions.DBusException("out of range", name="org.bluez.Error.Failed")\n'
                   'self.UpdateProperties("org.bluez.Device1", {"Connected": dbus.Boolean(True), '
                   '"ServicesResolved": dbus.Boolean(True)})')
dev_mock.AddMethod(DEVICE, "Disconnect", "", "",
                   'self.UpdateProperties("org.bluez.Device1", {"Connected": dbus.Boolean(False), '
                   '"ServicesResolved": dbus.Boolean(False)})')

root = dbus.Interface(bus.get_object("org.bluez", "/"), MOCK)
svc = dev + "/service0010"
# A service with properties only makes introspection XML that btleplug rejects: add a method.
root.AddObject(svc, "org.bluez.GattService1",
               {"UUID": dbus.String(uuid128(service)), "Device": dbus.ObjectPath(dev),
                "Primary": dbus.Boolean(True), "Includes": dbus.Array([], signature="o")},
               [("VigilDummy", "", "", "")])
char_mocks = {}
for i, spec in enumerate(chars):
    short, flags = spec.split(":")
    path = f"{svc}/char{0x11 + i:04x}"
    root.AddObject(path, CHAR,
                   {"UUID": dbus.String(uuid128(short)), "Service": dbus.ObjectPath(svc),
                    "Flags": dbus.Array(flags.split("+"), signature="s"),
                    "Value": dbus.Array([], signature="y"), "Notifying": dbus.Boolean(False)},
                   [("ReadValue", "a{sv}", "ay", 'ret = self.Get("org.bluez.GattCharacteristic1", "Value")'),
                    ("WriteValue", "aya{sv}", "", ""),
                    ("StartNotify", "", "", 'self.UpdateProperties("org.bluez.GattCharacteristic1", {"Notifying": dbus.Boolean(True)})'),
                    ("StopNotify", "", "", 'self.UpdateProperties("org.bluez.GattCharacteristic1", {"Notifying": dbus.Boolean(False)})')])
    char_mocks[short.upper()] = dbus.Interface(bus.get_object("org.bluez", path), MOCK)
dev_mock.UpdateProperties(DEVICE, {"UUIDs": dbus.Array([uuid128(service)], signature="s"),
                                   "ServicesResolved": dbus.Boolean(True)})
print("ready", flush=True)

for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "notify" and words[1].upper() in char_mocks:
        value = bytes.fromhex(words[2])
        char_mocks[words[1].upper()].UpdateProperties(CHAR, {"Value": dbus.Array(value, signature="y")})
    elif words[0] in ("disconnect", "away"):
        dev_mock.UpdateProperties(DEVICE, {"VigilAway": dbus.Boolean(words[0] == "away"),
                                           "Connected": dbus.Boolean(False),
                                           "ServicesResolved": dbus.Boolean(False)})
    elif words[0] == "back":
        dev_mock.UpdateProperties(DEVICE, {"VigilAway": dbus.Boolean(False)})
    print("ok", flush=True)
