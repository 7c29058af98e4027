<?php
// php-ffi: the C core's server from PHP through FFI (php/ffi/Server.php).
//
//     php -d ffi.enable=1 php/acceptloop-ffi.php --service echo --model event --port 0
//
// Debian's php-cli sets ffi.enable=preload, which allows FFI only to code an opcache preload
// script declared; `-d ffi.enable=1` allows it to this process alone, and the declarations come
// from cext/acceptloop.h at start-up (php/ffi/Core.php). build/libacceptloop.so is `make lib`;
// ACCEPTLOOP_FFI_LIBRARY and ACCEPTLOOP_FFI_HEADER name another build of the same core instead.
declare(strict_types=1);

// Every class is loaded before the server opens a descriptor (as php/acceptloop.php does): the
// lines of a start-up failure must not need one, since running out of them may be the failure.
foreach (['Protocol', 'UsageError', 'Config', 'Args', 'Errno', 'Os'] as $class) {
    require __DIR__ . "/src/{$class}.php";
}
foreach (['Libc', 'Core', 'Server'] as $class) {
    require __DIR__ . "/ffi/{$class}.php";
}

$root = dirname(__DIR__);
$header = getenv('ACCEPTLOOP_FFI_HEADER') ?: "{$root}/cext/acceptloop.h";
$library = getenv('ACCEPTLOOP_FFI_LIBRARY') ?: "{$root}/build/libacceptloop.so";
exit(AcceptLoop\Ffi\Server::main(array_slice($argv, 1), $header, $library));
