%%% @doc Loaded twice into the measured node by bd_footprint:old_code_start/1
%%% so that old code exists with a few processes on it: the state right
%%% after a hot upgrade.
-module(bd_fp_old).

-export([loop/0]).

%% @doc Local recursion: stays on the code it started in.
-spec loop() -> ok.
loop() ->
    receive
        stop -> ok;
        _ -> loop()
    end.
