package pybeat.nodelauncher.es7;

import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.transport.Netty4Plugin;

import pybeat.nodelauncher.Launcher;

/** An embedded Elasticsearch 7.17 node: the server jar plus netty4 for HTTP and transport. */
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
        System.setProperty("es.set.netty.runtime.available.processors", "false");
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
