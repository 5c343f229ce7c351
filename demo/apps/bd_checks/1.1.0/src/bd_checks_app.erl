%%% @doc Application callback of the bd_checks demo: the supervision tree,
%%% and one gen_server started outside it (what `not_suspended' finds).
-module(bd_checks_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @doc Starts the top supervisor, then the unsupervised server.
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    _ = bd_checks_missing:vsn(),   % loaded: the relup must replace it (it does not)
    {ok, Sup} = bd_checks_sup:start_link(),
    {ok, _} = bd_checks_lone:start(),
    {ok, Sup}.

%% @doc Nothing to clean up.
-spec stop(term()) -> ok.
stop(_State) -> ok.
