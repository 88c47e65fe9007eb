# Every AWS Secrets Manager target should say who owns it: a warning, not a denial, so a new
# target can be synced while its owner is found. Tags are the target's `tags:` in the config.
package secretsync

required_tags := {"owner"}

warn contains msg if {
	input.target.type == "aws_secretsmanager"
	some tag in required_tags
	not input.target.tags[tag]
	msg := sprintf("target %s has no `%s` tag; add it under the target's `tags:`", [input.target.name, tag])
}
