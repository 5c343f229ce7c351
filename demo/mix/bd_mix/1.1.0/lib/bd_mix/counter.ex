defmodule BdMix.Counter do
  @moduledoc "A GenServer counting calls; 1.1.0 keeps {count, upgrades} and migrates in code_change/3."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, {0, 0}, name: __MODULE__)
  def bump, do: GenServer.call(__MODULE__, :bump)
  def version, do: "1.1.0"

  @impl true
  def init(s), do: {:ok, s}

  @impl true
  def handle_call(:bump, _from, {n, u}), do: {:reply, n + 1, {n + 1, u}}

  @impl true
  def code_change({:down, _}, {n, _u}, _extra), do: {:ok, n}
  def code_change(_old, n, _extra) when is_integer(n), do: {:ok, {n, 1}}
end
