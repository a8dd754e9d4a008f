internal import CUdev

/// A libudev context and the device it looked up, freed with the value.
struct UdevLookup: ~Copyable {
    private let context: OpaquePointer
    private let device: OpaquePointer?

    /// Looks up the block device `kernelName` (`udev_device_new_from_subsystem_sysname`).
    init?(kernelName: String) {
        guard let context = udev_new() else { return nil }
        self.context = context
        self.device = udev_device_new_from_subsystem_sysname(context, "block", kernelName)
    }

    deinit {
        if let device { udev_device_unref(device) }
        udev_unref(context)
    }

    /// The udev properties ferry shows, and whether a parent is on USB.
    ///
    /// The parent walk reads sysfs, so it works with an empty udev database;
    /// the properties need the database.
    var hardware: Hardware {
        guard let device else { return Hardware() }
        var hardware = Hardware(
            bus: property(device, "ID_BUS"),
            serial: property(device, "ID_SERIAL_SHORT") ?? property(device, "ID_SERIAL"),
            vendor: property(device, "ID_VENDOR"),
            model: property(device, "ID_MODEL"))
        hardware.udevKnown = udev_device_get_is_initialized(device) > 0
        hardware.usbParent = udev_device_get_parent_with_subsystem_devtype(device, "usb", "usb_device") != nil
        return hardware
    }

    private func property(_ device: OpaquePointer, _ name: String) -> String? {
        guard let value = udev_device_get_property_value(device, name) else { return nil }
        return String(cString: value)
    }
}
