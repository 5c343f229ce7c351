%% Three loop shapes (see demo/README.md):
%% - ext: recurses with ?MODULE:ext_loop/1, so it enters the newest code;
%% - local: recurses with a local call, so it never leaves its version;
%% - pinned: run/0 calls serve/0 (which recurses fully qualified) in a
%%   non-tail position: serve/0 moves on, run/0's frame keeps the old code.
-module(bd_loops_worker).
-export([start_link/1, init/1, ext_loop/1, local_loop/1, run/0, serve/0, version/0]).

start_link(Kind) -> {ok, proc_lib:spawn_link(?MODULE, init, [Kind])}.

init(Kind) ->
    register(list_to_atom("bd_loops_" ++ atom_to_list(Kind)), self()),
    case Kind of
        ext -> ext_loop(0);
        local -> local_loop(0);
        pinned -> run()
    end.

version() -> 1.

ext_loop(N) ->
    receive
        {ping, From} -> From ! {pong, version(), N}, ?MODULE:ext_loop(N + 1)
    end.

local_loop(N) ->
    receive
        {ping, From} -> From ! {pong, version(), N}, local_loop(N + 1)
    end.

run() ->
    serve(),
    exit(served).

serve() ->
    receive
        {ping, From} -> From ! {pong, version(), 0}, ?MODULE:serve();
        stop -> ok
    end.
