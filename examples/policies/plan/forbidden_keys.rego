# Long-lived AWS access keys belong in production only (where they are reviewed); anywhere
# else a secret that holds one is denied. A target is production when its `environment` tag
# says so.
package secretsync

forbidden_outside_production := {"aws_secret_access_key", "aws_access_key_id"}

production if input.target.tags.environment == "production"

deny contains msg if {
	not production
	some c in input.changes
	c.kind != "deleted"
	some key in c.key_names
	forbidden_outside_production[key]
	msg := sprintf("%s holds `%s`, which is allowed in production targets only (target %s)", [c.path, key, input.target.name])
}
