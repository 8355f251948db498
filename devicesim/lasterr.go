package devicesim

// LastConnectError returns the error of the device's last failed connect
// ("" when none failed), so a report can say why devices never connected.
func (d *Device) LastConnectError() string {
	if p := d.lastConnErr.Load(); p != nil {
		return *p
	}
	return ""
}
