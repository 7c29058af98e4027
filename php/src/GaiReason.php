<?php
// Why a name did not resolve. socket_addrinfo_lookup() returns false and nothing else when
// getaddrinfo() fails: php-src drops the EAI_* code and sets no socket_last_error(). So
// after a failure the same lookup is asked of libc through FFI, only to learn the code and
// its gai_strerror() text. Without FFI (disabled or not built) the line says PHP cannot tell.
declare(strict_types=1);

namespace AcceptLoop;

final class GaiReason
{
    private const CDEF = <<<'C'
        struct addrinfo {
            int ai_flags; int ai_family; int ai_socktype; int ai_protocol;
            unsigned int ai_addrlen; void *ai_addr; char *ai_canonname; struct addrinfo *ai_next;
        };
        int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res);
        void freeaddrinfo(struct addrinfo *res);
        const char *gai_strerror(int errcode);
        C;

    /** [code, `Name or service not known (EAI_NONAME)`]; code 0 when it could not be learnt. */
    public static function explain(string $host, string $service, int $flags, int $socktype): array
    {
        if (!class_exists(\FFI::class)) {
            return [0, self::unknown()];
        }
        try {
            $libc = \FFI::cdef(self::CDEF, 'libc.so.6');
            $hints = $libc->new('struct addrinfo');
            $hints->ai_flags = $flags;
            $hints->ai_socktype = $socktype;
            $result = $libc->new('struct addrinfo*');
            $code = $libc->getaddrinfo($host, $service, \FFI::addr($hints), \FFI::addr($result));
            if ($code === 0) {
                // It resolves now: the first failure was transient, and its code is lost.
                $libc->freeaddrinfo($result);
                return [0, self::unknown()];
            }
            // FFI hands a `const char *` result back as a PHP string.
            return [$code, Errno::describeGai($code, (string) $libc->gai_strerror($code))];
        } catch (\Throwable) {
            // FFI present but not usable here (ffi.enable=false, another libc): say so, don't guess.
            return [0, self::unknown()];
        }
    }

    private static function unknown(): string
    {
        return 'name resolution failed; PHP does not report why (EAI_?)';
    }
}
