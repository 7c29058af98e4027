/* The network steps of the C server: resolve, open_listeners, announce, accept_client.
 *
 * Each step is marked (step: NAME ... end step) so the report can show it
 * beside the Python and PHP code that does the same thing. anet-style: the
 * caller's error record comes first, and a step that fails closes what it opened.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errors.h"
#include "net.h"
#include "pause.h"
#include "platform.h"
#include "protocol.h"

void al_format_address(char *buf, size_t len, const char *host, int port)
{
    if (host == NULL)
        host = "";
    if (strchr(host, ':') != NULL)
        snprintf(buf, len, "[%s]:%d", host, port);
    else
        snprintf(buf, len, "%s:%d", host, port);
}

int al_sockaddr_host(const struct sockaddr *sa, char *host, size_t len, int *port)
{
    const void *where;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        where = &in->sin_addr;
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        where = &in6->sin6_addr;
        *port = ntohs(in6->sin6_port);
    } else {
        errno = EAFNOSUPPORT;
        return AL_ERR;
    }
    return inet_ntop(sa->sa_family, where, host, (socklen_t)len) != NULL ? AL_OK : AL_ERR;
}

void al_describe_sockaddr(char *buf, size_t len, const struct sockaddr *sa)
{
    char host[AL_ADDRESS_LEN];
    int port = 0;
    if (al_sockaddr_host(sa, host, sizeof host, &port) != AL_OK)
        snprintf(host, sizeof host, "?");
    al_format_address(buf, len, host, port);
}

void al_set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((unsigned short)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((unsigned short)port);
}

int al_bound_port(struct al_error *err, int fd, const char *where, int *port)
{
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    char host[AL_ADDRESS_LEN];
    if (getsockname(fd, (struct sockaddr *)&bound, &len) < 0 ||
        al_sockaddr_host((struct sockaddr *)&bound, host, sizeof host, port) != AL_OK) {
        al_error_set(err, "getsockname", where, al_sock_error());
        return AL_ERR;
    }
    return AL_OK;
}

/* step: resolve */
int al_resolve(struct al_error *err, const char *host, int port, int socktype, struct al_address **out)
{
    struct addrinfo hints, *infos, *ai;
    char service[16], where[AL_ERROR_LEN];   /* the whole host, however long the contract lets it be */
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_PASSIVE;
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host != NULL && host[0] != '\0' ? host : NULL, service, &hints, &infos);
    if (rc != 0) {
        int saved = errno;   /* EAI_SYSTEM keeps its cause in errno */
        al_format_address(where, sizeof where, host, port);
        errno = saved;
        al_error_set_gai(err, "resolve", where, rc);
        return AL_ERR;
    }
    size_t total = 0;
    for (ai = infos; ai != NULL; ai = ai->ai_next)
        total++;
    struct al_address *addrs = calloc(total, sizeof *addrs);
    if (addrs == NULL) {
        freeaddrinfo(infos);
        al_format_address(where, sizeof where, host, port);
        al_error_set(err, "resolve", where, ENOMEM);
        return AL_ERR;
    }
    int n = 0;
    for (ai = infos; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof addrs[0].addr)
            continue;
        int repeat = 0;   /* glibc lists an address once per protocol it could mean */
        for (int j = 0; j < n && !repeat; j++)
            repeat = addrs[j].family == ai->ai_family && (size_t)addrs[j].len == (size_t)ai->ai_addrlen &&
                     memcmp(&addrs[j].addr, ai->ai_addr, ai->ai_addrlen) == 0;
        if (repeat)
            continue;
        addrs[n].family = ai->ai_family;
        addrs[n].socktype = ai->ai_socktype;
        addrs[n].protocol = ai->ai_protocol;
        addrs[n].len = ai->ai_addrlen;
        memcpy(&addrs[n].addr, ai->ai_addr, ai->ai_addrlen);
        n++;
    }
    freeaddrinfo(infos);
    *out = addrs;
    return n;
}
/* end step */

/* One listener on address a (its port set to *port): socket, options, bind, listen.
 * With *port 0 the kernel chooses, and *port gets its choice for the next ones.
 * Returns the descriptor, or AL_ERR with err filled and the socket closed. */
static int open_listener(struct al_error *err, const struct al_config *cfg, struct al_address *a, int v6only,
                         int reuse_port, int *port)
{
    struct sockaddr *sa = (struct sockaddr *)&a->addr;
    char where[AL_ADDRESS_LEN + 8];
    al_set_port(&a->addr, *port);
    al_describe_sockaddr(where, sizeof where, sa);
    /* step: socket */
    /* Not inherited: inside Python a subprocess must not get the listener (platform.h). */
    int fd = al_sock_open(a->family, a->socktype, a->protocol);
    if (fd < 0) {
        al_error_set(err, "socket", where, al_sock_error());
        return AL_ERR;
    }
    /* end step */
    /* step: options */
    /* SO_REUSEADDR on POSIX, SO_EXCLUSIVEADDRUSE on Winsock (platform.h); SO_REUSEPORT
     * for --workers (POSIX only). */
    if (al_sock_listener_options(fd) < 0 || (reuse_port && al_sock_reuse_port(fd) < 0) ||
        (a->family == AF_INET6 && al_sock_setopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only) < 0) ||
        al_sock_nonblocking(fd) < 0) {
        al_error_set(err, "setsockopt", where, al_sock_error());
        goto fail;
    }
    /* end step */
    /* step: bind */
    if (bind(fd, sa, a->len) < 0) {
        al_error_set(err, "bind", where, al_sock_error());
        goto fail;
    }
    /* end step */
    /* step: listen */
    if (listen(fd, cfg->backlog) < 0) {
        al_error_set(err, "listen", where, al_sock_error());
        goto fail;
    }
    /* end step */
    /* The kernel chose a port: the other listeners take the same one. */
    if (*port == 0 && al_bound_port(err, fd, where, port) != AL_OK)
        goto fail;
    return fd;
fail:
    al_sock_close(fd);
    return AL_ERR;
}

int al_open_each(struct al_error *err, const struct al_config *cfg, int socktype, al_open_one open_one,
                 int reuse_port, int **fds_out)
{
    struct al_address *addrs;
    int n = al_resolve(err, cfg->host, cfg->port, socktype, &addrs);
    if (n == AL_ERR)
        return AL_ERR;
    int also_ipv4 = 0;
    for (int i = 0; i < n; i++)
        also_ipv4 |= addrs[i].family == AF_INET;
    int *fds = malloc((size_t)n * sizeof *fds);
    int count = 0, port = cfg->port;
    if (fds == NULL) {
        char where[AL_ADDRESS_LEN + 8];
        al_format_address(where, sizeof where, cfg->host, port);
        al_error_set(err, "socket", where, ENOMEM);
        free(addrs);
        return AL_ERR;
    }
    for (int i = 0; i < n; i++) {
        int fd = open_one(err, cfg, &addrs[i], cfg->ipv6_only || also_ipv4, reuse_port, &port);
        if (fd == AL_ERR) {
            for (int j = 0; j < count; j++)
                al_sock_close(fds[j]);
            free(fds);
            free(addrs);
            return AL_ERR;
        }
        fds[count++] = fd;
    }
    free(addrs);
    *fds_out = fds;
    return count;
}

int al_open_listeners(struct al_error *err, const struct al_config *cfg, int reuse_port, int **fds_out)
{
    return al_open_each(err, cfg, SOCK_STREAM, open_listener, reuse_port, fds_out);
}

int al_announce(struct al_error *err, FILE *out, const int *fds, int count)
{
    for (int i = 0; i < count; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char host[AL_ADDRESS_LEN];
        int port;
        if (getsockname(fds[i], (struct sockaddr *)&ss, &len) < 0 ||
            al_sockaddr_host((struct sockaddr *)&ss, host, sizeof host, &port) != AL_OK) {
            al_error_set(err, "getsockname", "listener", al_sock_error());
            return AL_ERR;
        }
        fprintf(out, AL_ANNOUNCE_LISTENING "\n", host, port);
    }
    fputs(AL_ANNOUNCE_READY "\n", out);
    if (fflush(out) != 0 || ferror(out)) {
        al_error_set(err, "announce", "stdout", errno);
        return AL_ERR;
    }
    return AL_OK;
}

/* step: accept */
int al_accept_client(struct al_error *err, int listener, struct al_pause *pause,
                     char *peer, size_t peerlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    err->message[0] = '\0';
    /* Non-blocking and not inherited (accept4 on Linux, platform.h). */
    int fd = al_sock_accept(listener, (struct sockaddr *)&ss, &len);
    if (fd < 0)
        return al_accept_failed(err, listener, pause, al_sock_error());
    al_accepted(fd, (struct sockaddr *)&ss, pause, peer, peerlen);
    return fd;
}

int al_accept_failed(struct al_error *err, int listener, struct al_pause *pause, int code)
{
    err->message[0] = '\0';
    if (al_accept_error_is_per_connection(code))
        return AL_ERR;
    /* Out of descriptors (or worse): the connection stays queued in the
     * kernel, so rest the listeners instead of waking on it forever. */
    int first = al_pause_extend(pause, al_now());
    if (first || !al_accept_error_is_resources(code)) {
        struct sockaddr_storage mine;
        socklen_t mine_len = sizeof mine;
        char where[AL_ADDRESS_LEN + 8] = "listener";
        if (getsockname(listener, (struct sockaddr *)&mine, &mine_len) == 0)
            al_describe_sockaddr(where, sizeof where, (struct sockaddr *)&mine);
        al_error_set(err, "accept", where, code);
        size_t used = strlen(err->message);
        snprintf(err->message + used, sizeof err->message - used, "; accepting paused");
    }
    return AL_ERR;
}

void al_accepted(int fd, const struct sockaddr *peer_addr, struct al_pause *pause, char *peer, size_t peerlen)
{
    al_pause_clear(pause);
    /* A failure means the peer is gone already; the first recv will say so. */
    (void)al_sock_setopt_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    al_describe_sockaddr(peer, peerlen, peer_addr);
}
/* end step */
