package pybeat.nodelauncher.os2;

import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.settings.Settings;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.transport.Netty4Plugin;

import pybeat.nodelauncher.Launcher;

/** An embedded OpenSearch 2.19 node: the server jar plus netty4 for HTTP and transport. */
public final class Main {

    static final class PluginNode extends Node {
        PluginNode(Settings settings) {
            super(
                InternalSettingsPreparer.prepareEnvironment(settings, Collections.emptyMap(), null, () -> settings.get("node.name")),
                List.of(Netty4Plugin.class),
                true
            );
        }
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("opensearch.set.netty.runtime.available.processors", "false");
        Launcher.main(Main::start, args);
    }

    static AutoCloseable start(Map<String, String> flat) throws Exception {
        Settings.Builder b = Settings.builder();
        flat.forEach(b::put);
        Node node = new PluginNode(b.build());
        node.start();
        return () -> {
            node.close();
            node.awaitClose(30, TimeUnit.SECONDS);
        };
    }
}
