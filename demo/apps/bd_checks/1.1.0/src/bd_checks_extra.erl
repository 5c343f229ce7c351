%%% @doc New in 1.1.0: a worker the new supervisor spec adds.
-module(bd_checks_extra).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2]).

%% @doc Starts the worker, registered.
-spec start_link() -> {ok, pid()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
init([]) -> {ok, #{}}.
%% @private
handle_call(_Req, _From, S) -> {reply, ok, S}.
%% @private
handle_cast(_Msg, S) -> {noreply, S}.
