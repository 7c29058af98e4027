/* The Winsock side of the platform layer (platform.h): the Winsock 2 headers
 * and what POSIX names the core uses that they lack. The functions are in
 * platform_winsock.c. Built with mingw-w64 (-D_WIN32_WINNT=0x0600 or later:
 * WSAPoll, inet_ntop and struct pollfd came with Vista). */
#ifndef AL_PLATFORM_WINSOCK_H
#define AL_PLATFORM_WINSOCK_H

#include <winsock2.h>
#include <ws2tcpip.h>
#include <sys/types.h>   /* ssize_t */

/* WSAPoll counts its array in a ULONG. */
typedef unsigned long nfds_t;

#endif /* AL_PLATFORM_WINSOCK_H */
