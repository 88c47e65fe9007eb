# No run deletes more than a handful of secrets from one target: a bigger clean-up is done on
# purpose, with this policy relaxed for that run.
package secretsync

max_deletions := 5

deny contains msg if {
	input.counts.deleted > max_deletions
	msg := sprintf("the plan deletes %d secrets from %s, more than %d", [input.counts.deleted, input.target.name, max_deletions])
}
