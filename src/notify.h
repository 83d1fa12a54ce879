/*
 * notify — tells the service manager how startup and shutdown go, with the
 * sd_notify datagram protocol: when $NOTIFY_SOCKET names a Unix datagram
 * socket (a path, or "@name" in the abstract namespace), each state such as
 * "READY=1" or "STOPPING=1" is sent to it as one datagram. Without
 * $NOTIFY_SOCKET nothing happens. Never blocks (MSG_DONTWAIT). Any thread;
 * grooved calls it from the loop thread.
 */
#ifndef GD_NOTIFY_H
#define GD_NOTIFY_H

/* Sends `state` (newline-separated VAR=value assignments). Returns 0 when
 * sent or when there is no service manager to tell, else a negative errno. */
int gd_notify(const char *state);

#endif
