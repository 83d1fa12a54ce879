/*
 * backup — the operator commands `grooved backup` (a consistent copy of a
 * data directory, taken while a server may be running on it) and `grooved
 * verify` (an offline check of a data directory). See backup.c. Main thread
 * only.
 */
#ifndef GD_BACKUP_H
#define GD_BACKUP_H

/* `grooved backup --data-dir DIR --to DIR`; argv[0] is "backup". Returns
 * the exit status: 0 done, 1 failed, 2 bad usage (or a target that is not
 * empty). */
int gd_backup_main(int argc, char **argv);

/* `grooved verify --data-dir DIR`; argv[0] is "verify". Returns the exit
 * status: 0 clean, 1 damage found (or the check could not run), 2 bad
 * usage. */
int gd_verify_main(int argc, char **argv);

#endif
