%%% @doc A counter server started outside any supervisor (1.0.0: the state
%%% is an integer). release_handler's supervisor walk never finds it.
-module(bd_checks_lone).
-behaviour(gen_server).

-export([start/0, bump/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

%% @doc Starts the server, registered, unlinked and unsupervised.
-spec start() -> {ok, pid()}.
start() -> gen_server:start({local, ?MODULE}, ?MODULE, [], []).

%% @doc Adds one; returns the new count.
-spec bump() -> integer().
bump() -> gen_server:call(?MODULE, bump).

%% @private
init([]) -> {ok, 0}.

%% @private
handle_call(bump, _From, N) -> {reply, N + 1, N + 1}.

%% @private
handle_cast(_Msg, S) -> {noreply, S}.

%% @private
code_change({down, _}, #{count := N}, _Extra) -> {ok, N};
code_change(_Old, S, _Extra) -> {ok, S}.
