// Package bot is imagebot's loop for one repository: fetch the branch, find the automation
// targets, make sure the scanner watches their images, choose each container's tag by its
// policy, edit and push the files, and hand the commit to the reconciler.
//
// A Bot runs ReconcileOnce whenever it is woken (a scan result for an image it watches, a
// git push hook, a webhook) and at least every git poll interval (default 1m). Tests call
// ReconcileOnce directly. A reverted update is a pin, not a fight: when the branch holds a
// reference imagebot once moved away from, to the reference the policy picks again,
// the bot keeps it until the policy picks something else.
//
// Edit, Release and Annotate make a person's edit (fluxctl's release, lock, automate …) in
// the repository, one at a time with the loop, with a commit message naming it and who
// asked; Release.Decide is the release's choice of edits, shared with the CLI's local mode.
package bot
