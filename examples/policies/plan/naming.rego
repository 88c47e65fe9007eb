# Destination names follow one convention: lowercase letters, digits and `/ _ . -`, starting
# with a letter or digit.
package secretsync

deny contains msg if {
	some c in input.changes
	c.kind != "deleted"
	not regex.match(`^[a-z0-9][a-z0-9/_.-]*$`, c.name)
	msg := sprintf("%s: the name breaks the naming convention (lowercase letters, digits, `/_.-`)", [c.name])
}
