<?php
// What php-ffi needs of libc itself, through FFI: errno after a core call failed (PHP has no
// other way to read it) and the dynamic linker's lookup, to declare only what a library exports.
declare(strict_types=1);

namespace AcceptLoop\Ffi;

final class Libc
{
    private static ?\FFI $libc = null;

    public static function ffi(): \FFI
    {
        return self::$libc ??= \FFI::cdef(
            'int *__errno_location(void);'
            . ' void *dlopen(const char *file, int mode); void *dlsym(void *handle, const char *name);'
            . ' char *dlerror(void);',
            'libc.so.6',
        );
    }

    /** errno as the last failed C call left it. */
    public static function errno(): int
    {
        return self::ffi()->__errno_location()[0];
    }
}
