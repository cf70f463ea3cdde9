"""The audit log beyond appending: verification, signed checkpoints, witnesses that keep
them off the host, export, and evidence packs. :mod:`opsconsole.audit` appends."""
