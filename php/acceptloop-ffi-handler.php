<?php
// php-ffi-handler: the C core's loop from PHP through FFI, with the service in PHP: the loop
// calls PHP closures for each connection's events (php/ffi/Handler.php, the core's handler API).
//
//     php -d ffi.enable=1 php/acceptloop-ffi-handler.php --service echo --model event --port 0
//
// Everything else is php-ffi's (php/acceptloop-ffi.php): arguments, start-up, the stop, exit
// codes. Models: iterative, fork and event; not threads (Server::HANDLER_MODELS says why).
declare(strict_types=1);

// Every class is loaded before the server opens a descriptor (see php/acceptloop-ffi.php); the
// services' classes too, whose helpers the handlers call while the loop runs.
foreach (['Protocol', 'UsageError', 'Config', 'Args', 'Errno', 'Os', 'Service', 'ChargenService',
        'DaytimeService', 'MessageService'] as $class) {
    require __DIR__ . "/src/{$class}.php";
}
foreach (['Libc', 'Core', 'Handler', 'Server'] as $class) {
    require __DIR__ . "/ffi/{$class}.php";
}

$root = dirname(__DIR__);
$header = getenv('ACCEPTLOOP_FFI_HEADER') ?: "{$root}/cext/acceptloop.h";
$library = getenv('ACCEPTLOOP_FFI_LIBRARY') ?: "{$root}/build/libacceptloop.so";
exit(AcceptLoop\Ffi\Server::main(array_slice($argv, 1), $header, $library, handler: true));
