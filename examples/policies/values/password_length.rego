# Passwords are long enough. This policy reads values, so its block says `with_values: true`:
# only this block sees them, inside the SecretSync process, and any value a message quotes is
# masked. Raise the minimum to 16 or more where your systems allow.
package secretsync

min_password_length := 12

deny contains msg if {
	some c in input.changes
	c.kind != "deleted"
	some key, value in c.value
	contains(lower(key), "password")
	is_string(value)
	count(value) < min_password_length
	msg := sprintf("%s: `%s` is %d characters, fewer than %d", [c.path, key, count(value), min_password_length])
}
