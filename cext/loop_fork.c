/* The fork model: a child process per connection. The parent closes its copy
 * of the client's socket (else the client never sees EOF) and reaps children
 * whenever SIGCHLD wakes it. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conn.h"
#include "errors.h"
#include "protocol.h"
#include "server.h"

struct children {
    struct al_hand_off hand_off;   /* first: the skeleton's pointer is this one's */
    struct al_server *srv;
    char *buf;                     /* allocated before any fork: each child serves with its own copy */
    sigset_t stop_signals;         /* blocked around fork */
    pid_t *pids;
    int count, cap;
};

/* The child drops what it inherited from the parent: the stop handlers and
 * the mask, the listeners and control pipes, and (inside Python) every other
 * descriptor of the host process, keeping stdio and its connection fd. */
static void forget_in_child(struct al_server *srv, int fd)
{
    /* SIGTERM ends the child (the parent sends it when the grace is over);
     * SIGINT from the terminal is left to the parent, which stops gracefully.
     * These are dispositions reset in the child, not handlers installed. Only
     * then is the mask cleared: the parent blocked the stop signals around fork
     * (a front end may have blocked them in its thread too), and one that came
     * meanwhile is delivered now, to the default action. */
    sigset_t none;
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    al_close_listeners(srv);
    close(srv->stop_r), close(srv->stop_w), close(srv->wake_r), close(srv->wake_w);
    /* Inside Python the child also inherits every descriptor of the host
     * process: another connection's socket kept open here would never see
     * its FIN. Keep stdio and this connection only. */
    if (fd > 3)
        close_range(3, (unsigned int)fd - 1, 0);
    close_range((unsigned int)fd + 1, ~0u, 0);
}

/* The child's whole life: serve one connection, then _exit, never returning
 * into the parent's loop (nor, inside Python, into the interpreter). */
static void serve_in_child(struct al_server *srv, int fd, const char *peer, char *buf)
{
    forget_in_child(srv, fd);
    struct al_conn conn;
    al_conn_open(&conn, fd, peer, &srv->cfg, NULL, al_now());
    al_serve_connection(NULL, &conn, buf, NULL);
    _exit(AL_EXIT_OK);
}

/* Collects every child of ours that has exited, so none is left a zombie.
 * Each pid is asked for by name, not with waitpid(-1): inside Python the
 * process may have other children whose status is not ours to take. */
static void reap_children(struct children *ch)
{
    for (int i = 0; i < ch->count;) {
        pid_t got = waitpid(ch->pids[i], NULL, WNOHANG);
        if (got == ch->pids[i] || (got < 0 && errno == ECHILD))
            ch->pids[i] = ch->pids[--ch->count];
        else
            i++;
    }
}

/* Waits at most `left` seconds for one of the children to exit. A pidfd
 * (Linux 5.3) becomes readable when its process exits, so no SIGCHLD handler
 * is needed: inside Python there is none. Where pidfd_open is missing, the
 * wake pipe (SIGCHLD, standalone) and a timer tick stand in for it. */
static void wait_for_a_child(struct al_server *srv, struct children *ch, double left)
{
    struct pollfd *p = calloc((size_t)ch->count + 1, sizeof *p);
    int exact = p != NULL;
    if (p == NULL) {
        struct pollfd one = { .fd = srv->wake_r, .events = POLLIN };
        poll(&one, 1, al_timeout_ms(left < AL_TIMER_TICK ? left : AL_TIMER_TICK));
        return;
    }
    p[0].fd = srv->wake_r, p[0].events = POLLIN;
    for (int i = 0; i < ch->count; i++) {
        p[i + 1].fd = (int)syscall(SYS_pidfd_open, ch->pids[i], 0);
        p[i + 1].events = POLLIN;
        exact &= p[i + 1].fd >= 0;
    }
    if (!exact && left > AL_TIMER_TICK)
        left = AL_TIMER_TICK;
    if (poll(p, (nfds_t)ch->count + 1, al_timeout_ms(left)) > 0 && (p[0].revents & POLLIN))
        al_drain_wake(srv);
    for (int i = 0; i < ch->count; i++)
        if (p[i + 1].fd >= 0)
            close(p[i + 1].fd);
    free(p);
}

/* Lets children finish until the grace deadline, then ends the rest with SIGTERM. */
static void stop_children(struct al_server *srv, struct children *ch)
{
    double deadline = al_stop_deadline(srv);
    for (;;) {
        reap_children(ch);
        double left = deadline - al_now();
        if (ch->count == 0 || left <= 0.0)
            break;
        wait_for_a_child(srv, ch, left);
    }
    for (int i = 0; i < ch->count; i++)
        kill(ch->pids[i], SIGTERM);
    for (int i = 0; i < ch->count; i++)
        while (waitpid(ch->pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
    ch->count = 0;
}

/* step: loop fork */
/* The hand-off: a child for the new connection. The parent keeps its pid and
 * closes its own copy of the socket (else the client never sees EOF). */
static void fork_child(struct al_hand_off *h, int fd, const char *peer)
{
    struct children *ch = (struct children *)h;
    if (ch->count == ch->cap) {
        int cap = ch->cap ? ch->cap * 2 : 16;
        pid_t *grown = realloc(ch->pids, (size_t)cap * sizeof *grown);
        if (grown == NULL) {
            al_log_error("fork", peer, ENOMEM);
            close(fd);
            return;
        }
        ch->pids = grown, ch->cap = cap;
    }
    /* The stop signals wait while fork runs: one landing in the child before
     * serve_in_child resets the handlers would run the parent's handler there
     * (and be lost), leaving a child that ignores the stop. The child unblocks
     * them once its own dispositions are in place; the parent right here. */
    sigset_t saved;
    pthread_sigmask(SIG_BLOCK, &ch->stop_signals, &saved);
    pid_t pid = fork();
    int fork_errno = errno;
    if (pid == 0)
        serve_in_child(ch->srv, fd, peer, ch->buf);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0)
        al_log_error("fork", peer, fork_errno);
    else
        ch->pids[ch->count++] = pid;
    close(fd);
}

/* The children alive, against --max-conns. */
static int active_children(struct al_hand_off *h)
{
    return ((struct children *)h)->count;
}

/* After every wait: collect the children that exited, so none stays a zombie. */
static void reap(struct al_hand_off *h)
{
    reap_children((struct children *)h);
}

int al_run_fork(struct al_server *srv, struct al_error *err)
{
    struct children ch = { .hand_off = { fork_child, active_children, reap }, .srv = srv };
    ch.buf = al_read_buffer(srv, err);
    if (ch.buf == NULL)
        return AL_ERR;
    sigemptyset(&ch.stop_signals);
    sigaddset(&ch.stop_signals, SIGTERM), sigaddset(&ch.stop_signals, SIGINT), sigaddset(&ch.stop_signals, SIGCHLD);
    int rc = al_accept_loop(srv, &ch.hand_off, err);
    stop_children(srv, &ch);
    free(ch.pids);
    free(ch.buf);
    return rc;
}
/* end step */
