/*
 * faults — test-only fault injection at named sites. When the environment
 * names a directory in GROOVED_TEST_FAULT_DIR, gd_fault("site") is true
 * while the file <dir>/site exists, so a test can make one kind of
 * operation fail at the moment it chooses, without root and without
 * LD_PRELOAD. Unset (always, in production), every call is false and costs
 * one branch. Free-standing; any thread.
 *
 * Sites: "checkpoint-commit" (the checkpoint transaction of a group commit
 * fails after its ops were appended), "log-truncate" (cutting a failed
 * batch back off the op log fails), "load-job" (a session's load cannot be
 * allocated), "broadcast" (a mutation's broadcast cannot be allocated),
 * "commit-delay" (each group commit waits 2 s before it reaches the store).
 */
#ifndef GD_FAULTS_H
#define GD_FAULTS_H

#include <stdbool.h>

bool gd_fault(const char *site);

#endif
