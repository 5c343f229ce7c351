%%% @doc Application callback for the bd_counter demo.
-module(bd_counter_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @doc Starts the top supervisor.
-spec start(Type, Args) -> {ok, pid()} | {error, term()} when
      Type :: application:start_type(),
      Args :: term().
start(_Type, _Args) ->
    bd_counter_sup:start_link().

%% @doc Nothing to clean up.
-spec stop(State) -> ok when State :: term().
stop(_State) ->
    ok.
