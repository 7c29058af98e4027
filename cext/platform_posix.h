/* The POSIX side of the platform layer (platform.h): the system headers the
 * core's sockets need. The functions are in platform_posix.c. */
#ifndef AL_PLATFORM_POSIX_H
#define AL_PLATFORM_POSIX_H

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#endif /* AL_PLATFORM_POSIX_H */
