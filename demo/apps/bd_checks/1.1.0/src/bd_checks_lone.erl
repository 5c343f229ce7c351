%%% @doc A counter server started outside any supervisor (1.1.0: the state
%%% is a map). Not code_changed by the upgrade, it crashes on its next call.
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
init([]) -> {ok, #{count => 0}}.

%% @private
handle_call(bump, _From, #{count := N} = S) -> {reply, N + 1, S#{count := N + 1}}.

%% @private
handle_cast(_Msg, S) -> {noreply, S}.

%% @private
code_change({down, _}, #{count := N}, _Extra) -> {ok, N};
code_change(_Old, N, _Extra) when is_integer(N) -> {ok, #{count => N}}.
